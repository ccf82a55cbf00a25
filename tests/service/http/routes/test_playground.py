"""`GET /` and its two assets over a live server; the page at work is tested in Chromium
(test_playground_in_browser.py)."""

from __future__ import annotations

import httpx
import pytest

from service.http.routes.docs import POLICY


def test_the_page_and_its_assets_are_served_without_a_key(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == POLICY
    assert 'src="playground/playground.js"' in page.text
    script = client.get("/playground/playground.js")
    assert (script.status_code, script.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert client.get("/playground/playground.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("name", ["index.html", "..%2Fplayground.py", "%2E%2E%2F%2E%2E%2Fapp.py", "nope.js"])
def test_nothing_else_is_read_from_the_folder(client: httpx.Client, name: str) -> None:
    response = client.get(f"/playground/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
