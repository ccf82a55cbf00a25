"""The hostile-input corpus (tests/hostile.py) against a live server: each kind gets its 4xx and the error
body of its route, and the service answers normally afterwards."""

from __future__ import annotations

import pytest
from conftest import LiveServer, encode, solid
from hostile import Hostile, corpus

# The shared server's limits (tests/conftest.py).
CASES = corpus(max_upload_bytes=2_000_000, max_images=4)


def test_the_corpus_has_at_least_forty_kinds() -> None:
    assert len({case.kind for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_each_hostile_request_gets_its_4xx_and_error_body(server: LiveServer, case: Hostile) -> None:
    headers = dict(case.headers)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    response = server.client.request(
        case.method, case.path, content=case.body or None, headers=headers, params=case.params
    )
    assert response.status_code == case.status, response.text[:500]
    # Errors quote what was sent in bounded excerpts, never whole; nothing sends the client elsewhere.
    assert len(response.content) < 2048
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("application/json")
    if case.code is None:
        assert set(response.json()) == {"error"}
        assert response.json()["error"]
    else:
        error = response.json()["error"]
        assert error["code"] == case.code
        assert error["message"]
    assert server.alive(), server.logs()


def test_the_service_answers_normally_after_the_corpus(server: LiveServer) -> None:
    response = server.client.post(
        "/classify", content=encode(solid((0, 0, 255)), "PNG"), headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["predictions"][0]["label"] == "blue"
