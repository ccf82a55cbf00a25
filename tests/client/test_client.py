"""vision_client against live servers over the bundled models: every input kind, batches, typed answers,
API keys, errors with their codes, retries that honour Retry-After, time-outs, and the async twin."""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_KEYS, REPO_ROOT, LiveServer, ServerFactory
from PIL import Image
from probes import without
from vision_client.api.schemas import (
    ClassifyResponse,
    DetectResponse,
    ExplainResponse,
    FailedImage,
    Health,
    ModelsResponse,
    SegmentResponse,
)
from vision_client.client import AsyncClient, Client, VisionError

EXAMPLES = REPO_ROOT / "docs" / "examples"
STAR = EXAMPLES / "star.jpg"


@pytest.fixture(scope="module")
def vision(bundled_server: LiveServer) -> Iterator[Client]:
    with Client(bundled_server.url) as client:
        yield client


def top_labels(answer: ClassifyResponse) -> list[str]:
    return [result.predictions[0].label for result in answer.results]


def test_a_path_bytes_a_pil_image_and_a_numpy_array_are_the_same_image(vision: Client) -> None:
    picture = Image.open(STAR)
    inputs = [STAR, str(STAR), STAR.read_bytes(), picture, np.asarray(picture.convert("RGB"))]
    for image in inputs:
        answer = vision.classify(image, top_k=1)
        assert isinstance(answer, ClassifyResponse)
        assert top_labels(answer) == ["star"], type(image)
        assert (answer.results[0].image.width, answer.results[0].image.height) == picture.size


def test_a_batch_larger_than_one_request_comes_back_whole_and_in_order(bundled_server: LiveServer) -> None:
    images = [STAR, EXAMPLES / "digit.png"] * 11
    with Client(bundled_server.url, batch_size=4) as small_requests:
        answer = small_requests.classify(images, model="digits", top_k=1)
    assert len(answer.results) == 22
    assert [r.image.width for r in answer.results] == [141, 32] * 11
    assert top_labels(answer)[1::2] == ["7"] * 11


def test_detect_segment_and_segment_json(vision: Client) -> None:
    found = vision.detect(EXAMPLES / "shapes.jpg", score_threshold=0.5)
    assert isinstance(found, DetectResponse)
    assert sorted(d.label for d in found.results[0].detections) == ["cross", "hexagon", "star"]
    png = Image.open(io.BytesIO(vision.segment(STAR, style="color")))
    assert (png.format, png.size) == ("PNG", Image.open(STAR).size)
    batch = vision.segment_json([STAR, EXAMPLES / "shapes.jpg"])
    assert isinstance(batch, SegmentResponse)
    assert [sum(r.fractions.values()) for r in batch.results] == pytest.approx([1, 1])


def test_explain_and_explain_json(vision: Client) -> None:
    png = Image.open(io.BytesIO(vision.explain(STAR)))
    assert (png.format, png.size) == ("PNG", Image.open(STAR).size)
    batch = vision.explain_json([STAR, STAR], class_="circle")
    assert isinstance(batch, ExplainResponse)
    assert [r.label for r in batch.results] == ["circle", "circle"]
    top = vision.explain_json(STAR, **{"class": "star"}).results[0]
    assert (top.label, len(top.grid), len(top.grid[0])) == ("star", 8, 8)
    assert max(max(row) for row in top.grid) == 1
    with pytest.raises(VisionError) as refused:
        vision.explain(STAR, model="digits")
    assert (refused.value.status, refused.value.code) == (422, "cannot_explain")


def test_models_one_model_ready_and_live(vision: Client) -> None:
    listed = vision.models()
    assert isinstance(listed, ModelsResponse)
    assert {m.name for m in listed.models} >= {"digits", "shapes-detector"}
    assert vision.model("digits").versions[0].labels[7] == "7"
    assert vision.ready() == Health(status="ok", models=vision.ready().models)
    assert vision.live().status == "ok"


def test_errors_are_exceptions_with_the_service_s_code(vision: Client) -> None:
    with pytest.raises(VisionError) as unknown:
        vision.classify(STAR, model="nope")
    assert (unknown.value.status, unknown.value.code) == (404, "model_not_found")
    assert "digits" in unknown.value.detail["available"]
    with pytest.raises(VisionError) as wrong_task:
        vision.detect(STAR, model="shapes-classifier")
    assert (wrong_task.value.status, wrong_task.value.code) == (422, "wrong_task")
    with pytest.raises(VisionError) as not_an_image:
        vision.classify(b"hello")
    assert (not_an_image.value.status, not_an_image.value.code) == (415, "unsupported_image")


def test_inputs_it_cannot_send_are_refused_before_sending(vision: Client) -> None:
    with pytest.raises(TypeError, match="a path, bytes, a PIL image or a numpy array"):
        vision.classify(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="uint8"):
        vision.classify(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="no image"):
        vision.classify([])
    with pytest.raises(ValueError, match="segment_json"):
        vision.segment([STAR, STAR])


def test_an_option_the_task_does_not_have_is_refused_by_name_before_sending(vision: Client) -> None:
    with pytest.raises(
        TypeError, match=r"DetectOptions: top_k \(it has model, version, partial, score_threshold"
    ):
        vision.detect(STAR, top_k=3)
    with pytest.raises(TypeError, match="not an option of SegmentOptions: colour"):
        vision.segment(STAR, colour="red")
    with pytest.raises(TypeError, match="not an option of ExplainOptions: klass"):
        vision.explain(STAR, klass="star")


def test_the_api_key_is_sent_and_a_wrong_one_is_an_error(bundled_guarded_server: LiveServer) -> None:
    url = bundled_guarded_server.url
    with Client(url, api_key=BUNDLED_KEYS["api"]) as keyed:
        assert top_labels(keyed.classify(STAR)) == ["star"]
    for key, status, code in [(None, 401, "unauthorized"), ("wrong-key", 403, "forbidden")]:
        with Client(url, api_key=key) as refused, pytest.raises(VisionError) as error:
            refused.classify(STAR)
        assert (error.value.status, error.value.code) == (status, code)


@pytest.fixture(scope="module")
def small_budget(start_server: ServerFactory) -> LiveServer:
    """Bodies share 1.5 MB: a million bytes received leave too little for a 0.6 MB upload, which gets 503."""
    return start_server(
        REPO_ROOT / "models", max_upload_bytes=1_000_000, body_budget_bytes=1_500_000, body_idle_seconds=20
    )


def noisy_png(size: tuple[int, int] = (480, 420)) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def hold_the_budget(server: LiveServer) -> socket.socket:
    """A connection that sends most of a 1 MB body and stalls: the bytes it sent stay in the budget."""
    holder = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    holder.sendall(
        b"POST /classify HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n"
        + b"\0" * 990_000
    )
    time.sleep(0.3)
    return holder


def test_a_503_is_retried_after_its_retry_after(small_budget: LiveServer) -> None:
    image = noisy_png()
    assert 600_000 < len(image) < 1_000_000
    holder = hold_the_budget(small_budget)
    retries: list[tuple[str, float]] = []

    def release_and_note(error: VisionError, wait: float) -> None:
        retries.append((error.code, wait))
        holder.close()  # the budget frees before the retry

    with Client(small_budget.url, on_retry=release_and_note) as vision:
        answer = vision.classify(image)
    assert retries == [("overloaded", 1.0)]
    assert len(answer.results) == 1


def test_when_the_retries_are_spent_the_503_is_raised(small_budget: LiveServer) -> None:
    holder = hold_the_budget(small_budget)
    try:
        with Client(small_budget.url, retries=0) as vision, pytest.raises(VisionError) as error:
            vision.classify(noisy_png())
    finally:
        holder.close()
    assert (error.value.status, error.value.code, error.value.retry_after) == (503, "overloaded", 1.0)


def test_a_silent_server_is_a_timeout_error_and_not_retried() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    retried: list[str] = []
    try:
        with (
            Client(url, timeout=0.5, on_retry=lambda e, w: retried.append(e.code)) as vision,
            pytest.raises(VisionError) as error,
        ):
            vision.ready()
    finally:
        listener.close()
        for sock in accepted:
            sock.close()
    assert (error.value.status, error.value.code, retried) == (None, "timeout", [])


def test_an_unreachable_server_is_retried_then_raised() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    retried: list[float] = []
    with (
        Client(
            f"http://127.0.0.1:{port}", retries=2, backoff=0.01, on_retry=lambda e, w: retried.append(w)
        ) as vision,
        pytest.raises(VisionError) as error,
    ):
        vision.models()
    assert error.value.code == "unreachable"
    assert len(retried) == 2


def test_the_async_client_answers_the_same(bundled_server: LiveServer, vision: Client) -> None:
    async def calls() -> tuple[ClassifyResponse, DetectResponse, bytes, ModelsResponse]:
        async with AsyncClient(bundled_server.url, batch_size=2) as client:
            return await asyncio.gather(
                client.classify([STAR, STAR, EXAMPLES / "shapes.jpg"], top_k=2),
                client.detect(EXAMPLES / "shapes.jpg"),
                client.segment(STAR),
                client.models(),
            )

    classified, detected, png, models = asyncio.run(calls())
    assert classified == vision.classify([STAR, STAR, EXAMPLES / "shapes.jpg"], top_k=2)
    assert detected == vision.detect(EXAMPLES / "shapes.jpg")
    assert png == vision.segment(STAR)
    assert models.models == vision.models().models


WITHOUT_THE_SERVER = without(
    "numpy", "onnxruntime", "fastapi", "starlette", "uvicorn", "multipart", "tensorflow"
)


def test_the_client_and_the_cli_need_none_of_the_server_s_packages(
    bundled_server: LiveServer, tmp_path: Path
) -> None:
    arguments = [
        "--url",
        bundled_server.url,
        "detect",
        str(EXAMPLES / "shapes.jpg"),
        "--draw",
        str(tmp_path / "b.png"),
    ]
    snippet = f"""{WITHOUT_THE_SERVER}
from vision_client.client import Client
with Client({bundled_server.url!r}) as vision:
    print(vision.classify({str(STAR)!r}).results[0].predictions[0].label)
from vision_client.cli import main
sys.exit(main({arguments!r}))
"""
    finished = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[0] == "star"
    assert "hexagon" in finished.stdout
    assert Image.open(tmp_path / "b.png").size == Image.open(EXAMPLES / "shapes.jpg").size


def test_service_client_is_the_client_distribution_s_module() -> None:
    import vision_client.client

    import service.client

    assert service.client is vision_client.client
    assert service.client.Client is Client


def batch_with_two_bad_images() -> list[object]:
    """40 images, a text file 11th and a truncated JPEG 30th: both in the second request of 16."""
    star = STAR.read_bytes()
    images: list[object] = [STAR] * 40
    images[10] = b"not a picture"
    images[29] = star[: len(star) // 2]
    return images


def test_a_partial_batch_of_several_requests_counts_each_failure_from_the_batch_s_start(
    vision: Client,
) -> None:
    answer = vision.classify(batch_with_two_bad_images(), partial=True, top_k=1)
    failed = {i: r.error for i, r in enumerate(answer.results) if isinstance(r, FailedImage)}
    assert {i: (error.code, error.detail["index"]) for i, error in failed.items()} == {
        10: ("unsupported_image", 10),
        29: ("corrupt_image", 29),
    }
    assert (
        top_labels(
            ClassifyResponse(
                model=answer.model, results=[r for r in answer.results if not isinstance(r, FailedImage)]
            )
        )
        == ["star"] * 38
    )


def test_without_partial_the_error_names_the_image_by_its_index_in_the_batch(vision: Client) -> None:
    images = batch_with_two_bad_images()
    images[10] = STAR
    with pytest.raises(VisionError) as refused:
        vision.classify(images)
    assert (refused.value.code, refused.value.detail) == (
        "corrupt_image",
        {"index": 29, "filename": "image-29"},
    )
