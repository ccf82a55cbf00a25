"""Batches that keep their good answers: `partial=true` puts each failed image's error in its place, and
without it the one error names the image that failed, by index and file name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT, LiveServer, ServerFactory

from service.settings import DEFAULT_MODELS

EXAMPLES = REPO_ROOT / "docs" / "examples"
STAR = (EXAMPLES / "star.jpg").read_bytes()
# Half a JPEG: its header opens, its pixels are missing.
CUT = STAR[: len(STAR) // 2]


@pytest.fixture(scope="module")
def forty_image_server(start_server: ServerFactory) -> LiveServer:
    return start_server(
        REPO_ROOT / "models", default_models=json.dumps(DEFAULT_MODELS), max_images=40, queue_size=64
    )


def forty_files(folder: Path) -> list[Path]:
    """38 photos, a text file 11th and a truncated JPEG 30th."""
    files = []
    for index in range(40):
        if index == 10:
            path, data = folder / "notes.txt", b"not a picture"
        elif index == 29:
            path, data = folder / "cut.jpg", CUT
        else:
            path, data = folder / f"star-{index:02}.jpg", STAR
        path.write_bytes(data)
        files.append(path)
    return files


def test_forty_images_through_curl_answer_38_results_and_2_errors_in_place(
    forty_image_server: LiveServer, tmp_path: Path
) -> None:
    forms = [argument for path in forty_files(tmp_path) for argument in ("-F", f"image=@{path}")]
    url = f"{forty_image_server.url}/classify?partial=true&top_k=1"
    curl = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *forms, url], capture_output=True, text=True, timeout=120
    )
    body, status = curl.stdout.rsplit("\n", 1)
    assert status == "200", curl.stdout + curl.stderr
    results = json.loads(body)["results"]
    assert len(results) == 40
    assert [r["predictions"][0]["label"] for r in results if "predictions" in r] == ["star"] * 38
    assert results[10]["error"]["code"] == "unsupported_image"
    assert results[10]["error"]["detail"] == {"index": 10, "filename": "notes.txt"}
    assert results[29]["error"]["code"] == "corrupt_image"
    assert results[29]["error"]["detail"] == {"index": 29, "filename": "cut.jpg"}


@pytest.mark.parametrize("route", ["/classify", "/detect", "/segment/json"])
def test_every_batch_route_keeps_its_good_answers(bundled_server: LiveServer, route: str) -> None:
    files = [("image", ("star.jpg", STAR)), ("image", ("notes.txt", b"hello")), ("image", ("s.jpg", STAR))]
    partial = bundled_server.client.post(route, params={"partial": "true"}, files=files)
    whole = bundled_server.client.post(route, files=[files[0]])
    assert partial.status_code == 200, partial.text
    first, failed, last = partial.json()["results"]
    assert first == last == whole.json()["results"][0]
    assert failed["error"]["detail"] == {"index": 1, "filename": "notes.txt"}


def test_without_partial_the_error_names_the_image(bundled_server: LiveServer) -> None:
    files = [("image", ("star.jpg", STAR)), ("image", ("cut.jpg", CUT))]
    refused = bundled_server.client.post("/classify", files=files)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "corrupt_image"
    assert refused.json()["error"]["detail"] == {"index": 1, "filename": "cut.jpg"}


def test_a_png_answer_has_no_place_for_an_error_so_partial_still_fails_the_call(
    bundled_server: LiveServer,
) -> None:
    refused = bundled_server.client.post(
        "/segment", params={"partial": "true"}, files={"image": ("notes.txt", b"hello")}
    )
    assert refused.status_code == 415
    assert refused.json()["error"]["detail"] == {"index": 0, "filename": "notes.txt"}


def test_a_raw_body_s_error_names_its_index_alone(bundled_server: LiveServer) -> None:
    answered = bundled_server.client.post(
        "/classify?partial=true", content=CUT, headers={"Content-Type": "image/jpeg"}
    )
    assert answered.status_code == 200
    assert answered.json()["results"] == [
        {
            "error": {
                "code": "corrupt_image",
                "message": answered.json()["results"][0]["error"]["message"],
                "detail": {"index": 0},
            }
        }
    ]
