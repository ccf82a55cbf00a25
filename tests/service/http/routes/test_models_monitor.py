"""Drift monitoring through a live server: `GET /models/{name}/monitor`, the `unfamiliar` answers, the
`X-Unfamiliar` header and the Prometheus series."""

from __future__ import annotations

from pathlib import Path

import onnx_models
import pytest
from conftest import LiveServer, ServerFactory, encode, solid
from prometheus_client.parser import text_string_to_metric_families

from service.core.reference import Mix, Reference

RED, GREY = (255, 0, 0), (128, 128, 128)
# The threshold segmenter is never less sure than this of a pixel of a solid image: nothing is unfamiliar.
SEGMENT_REFERENCE = Reference(
    images=30, source="hand-made", low_confidence=0.0, signals={"class_fractions": Mix(counts=(10, 10, 10))}
)


@pytest.fixture(scope="module")
def watched(start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    root = tmp_path_factory.mktemp("watched")
    onnx_models.colour_classifier(root, version=1)
    onnx_models.add_reference(onnx_models.colour_classifier(root, version=2), onnx_models.COLOUR_REFERENCE)
    onnx_models.add_reference(onnx_models.threshold_segmenter(root), SEGMENT_REFERENCE)
    onnx_models.fixed_detector(root)
    return start_server(root, monitor_window=20, monitor_minimum=5)


def classify(server: LiveServer, *colours: tuple[int, int, int]) -> list[dict]:
    files = [
        ("image", (f"{i}.png", encode(solid(c, (16, 16)), "PNG"), "image/png")) for i, c in enumerate(colours)
    ]
    response = server.client.post("/classify", files=files)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def monitor(server: LiveServer, name: str, **params: int) -> dict:
    response = server.client.get(f"/models/{name}/monitor", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_monitor_shows_the_window_beside_the_reference_once_it_holds_enough(watched: LiveServer) -> None:
    results = classify(watched, RED, RED, GREY, RED)
    assert [result["unfamiliar"] for result in results] == [False, False, True, False]
    early = monitor(watched, "colours")
    assert early["model"] == {"name": "colours", "version": 2}
    assert (early["monitoring"], early["images"], early["window"], early["minimum"]) == (True, 4, 20, 5)
    assert early["reference"] == {
        "images": 90,
        "source": "pure red, green and blue squares",
        "low_confidence": 0.9,
    }
    assert all(signal["psi"] is None for signal in early["signals"])

    for _ in range(3):
        classify(watched, *[RED] * 10)
    late = monitor(watched, "colours")
    assert (late["images"], late["unfamiliar"]) == (20, 0)
    signals = {signal["name"]: signal for signal in late["signals"]}
    assert set(signals) == {"confidence", "aspect_ratio", "class"}
    # All red against a third of each colour: drifted; every image square, as in the reference: stable.
    assert signals["class"]["window"] == [1.0, 0.0, 0.0]
    assert signals["class"]["bins"] == ["red", "green", "blue"]
    assert signals["class"]["psi"] > 0.2
    assert signals["aspect_ratio"]["psi"] < 0.1

    version = {"model": "colours", "version": "2"}
    # The gauges are worked out at most once a second, so they may lag the last images of this burst.
    assert sample(watched, "vision_drift_psi", signal="class", **version) > 0.2
    assert sample(watched, "vision_low_confidence_total", **version) == 1
    assert sample(watched, "vision_prediction_confidence_count", **version) == 34


def sample(server: LiveServer, name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics, by name and labels; None when absent."""
    for family in text_string_to_metric_families(server.client.get("/metrics").text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def test_the_monitor_of_another_version_is_its_own(watched: LiveServer) -> None:
    older = monitor(watched, "colours", version=1)
    assert older["model"] == {"name": "colours", "version": 1}
    # Version 1 carries no reference (only the file of version 2 was given one).
    assert (older["reference"], older["signals"], older["images"]) == (None, [], 0)


def test_a_segment_png_says_whether_the_image_is_unfamiliar(watched: LiveServer) -> None:
    image = encode(solid((255, 255, 255), (32, 16)), "PNG")
    png = watched.client.post("/segment", content=image, headers={"Content-Type": "image/png"})
    assert png.status_code == 200
    assert png.headers["X-Unfamiliar"] == "false"
    document = watched.client.post("/segment/json", content=image, headers={"Content-Type": "image/png"})
    assert document.json()["results"][0]["unfamiliar"] is False


def test_a_model_without_a_reference_is_not_judged(watched: LiveServer) -> None:
    image = encode(solid(GREY, (32, 32)), "PNG")
    answer = watched.client.post("/detect", content=image, headers={"Content-Type": "image/png"})
    assert answer.json()["results"][0]["unfamiliar"] is None
    report = monitor(watched, "boxes")
    assert (report["monitoring"], report["reference"], report["signals"]) == (True, None, [])


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/models/nothing/monitor", 404, "model_not_found"),
        ("/models/colours/monitor?version=9", 404, "model_not_found"),
        ("/models/colours/monitor?version=0", 422, "invalid_parameter"),
    ],
)
def test_an_unknown_model_or_version_is_refused(
    watched: LiveServer, path: str, status: int, code: str
) -> None:
    response = watched.client.get(path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_with_monitoring_off_nothing_is_watched(start_server: ServerFactory, tmp_path: Path) -> None:
    onnx_models.add_reference(onnx_models.colour_classifier(tmp_path), onnx_models.COLOUR_REFERENCE)
    server = start_server(tmp_path, monitor="false")
    assert classify(server, GREY)[0]["unfamiliar"] is None
    report = monitor(server, "colours")
    assert (report["monitoring"], report["images"], report["signals"]) == (False, 0, [])
    assert sample(server, "vision_prediction_confidence_count", model="colours", version="1") is None
