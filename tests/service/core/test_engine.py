"""The engine without HTTP: typed answers from the hand-built models, and every refusal as a coded error."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx_models
import pytest
from conftest import TEST_DEFAULTS, encode, solid
from PIL import Image

from service.api.options import ClassifyOptions, DetectOptions, ExplainOptions, SegmentOptions
from service.core.engine import Answer, Engine, EngineConfig, ModelId
from service.core.errors import (
    CannotExplainError,
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    TooManyImagesError,
    UnknownLabelError,
    UnsupportedImageError,
    WrongTaskError,
)
from service.core.intake import RequestLimits
from service.core.monitor import MonitorConfig, MonitorReport
from service.core.tasks.classify import CLASSIFY
from service.core.tasks.detect import DETECT
from service.core.tasks.explain import EXPLAIN, EXPLAIN_PICTURE
from service.core.tasks.segment import SEGMENT
from service.core.tasks.task import ImageSize
from service.observability import timing

T = TypeVar("T")
RED = (255, 0, 0)
LIMITS = RequestLimits(max_images=4, max_image_bytes=1 << 20, max_pixels=1 << 20, max_request_pixels=1 << 22)


def with_engine(models_dir: Path, work: Callable[[Engine], Awaitable[T]], **config: object) -> T:
    """Load an engine over `models_dir`, run `work` on it in one event loop, close it."""

    async def main() -> T:
        settings = {"limits": LIMITS, "default_models": TEST_DEFAULTS, "cores": 2, **config}
        engine = Engine(EngineConfig(models_dir=models_dir, **settings))  # type: ignore[arg-type]
        await engine.load()
        try:
            return await work(engine)
        finally:
            await engine.close()

    return asyncio.run(main())


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")


def bands(width: int = 64, height: int = 32) -> Image.Image:
    """White, mid-grey and black vertical bands: pet, border and background to the threshold segmenter."""
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[:, : width // 4] = 255
    pixels[:, width // 4 : width // 2] = 128
    return Image.fromarray(pixels, "L").convert("RGB")


def test_classify_answers_each_image_in_order(test_models_dir: Path) -> None:
    images = [png(solid(RED)), png(solid((0, 0, 255), (10, 20)))]
    answer = with_engine(
        test_models_dir, lambda engine: engine.run(CLASSIFY, images, ClassifyOptions(top_k=2))
    )
    assert answer.model == ModelId("colours", 2)
    assert [image.size for image in answer.images] == [ImageSize(64, 32), ImageSize(10, 20)]
    assert [image.predictions[0].label for image in answer.images] == ["red", "blue"]
    assert all(len(image.predictions) == 2 for image in answer.images)
    first = answer.images[0].predictions
    assert first[0].probability > first[1].probability


def test_classify_names_its_model_version(test_models_dir: Path) -> None:
    options = ClassifyOptions(model="colours", version=1)
    answer = with_engine(test_models_dir, lambda engine: engine.run(CLASSIFY, [png(solid(RED))], options))
    assert answer.model == ModelId("colours", 1)


def test_detect_maps_boxes_to_original_pixels_after_nms(test_models_dir: Path) -> None:
    # Letterboxing a 32x64 image into 32x32 pads 8 columns either side: A -> (0, 16, 32, 48),
    # C -> (0, 0, 16, 16); B overlaps A and goes, D is under the score threshold.
    answer = with_engine(
        test_models_dir, lambda engine: engine.run(DETECT, [png(bands(32, 64))], DetectOptions())
    )
    found = answer.images[0].detections
    assert answer.model == ModelId("boxes", 1)
    assert [(d.label, d.box) for d in found] == [
        ("circle", (0.0, 16.0, 32.0, 48.0)),
        ("square", (0.0, 0.0, 16.0, 16.0)),
    ]
    assert found[0].score == pytest.approx(0.9 * 0.9)
    assert found[0].iou == pytest.approx(0.9)


def test_detect_options_change_the_answer(test_models_dir: Path) -> None:
    image = [png(bands(32, 64))]

    async def counts(engine: Engine) -> list[int]:
        answers = [
            await engine.run(DETECT, image, DetectOptions(score_threshold=0.5)),
            await engine.run(DETECT, image, DetectOptions(iou_threshold=1.0)),
            await engine.run(DETECT, image, DetectOptions(max_detections=1)),
        ]
        return [len(answer.images[0].detections) for answer in answers]

    assert with_engine(test_models_dir, counts) == [1, 3, 1]


@pytest.mark.parametrize("style", ["mask", "color", "overlay"])
def test_segment_gives_the_trimap_at_the_input_size_and_its_png(test_models_dir: Path, style: str) -> None:
    answer = with_engine(
        test_models_dir, lambda engine: engine.run(SEGMENT, [png(bands())], SegmentOptions(style=style))
    )
    (image,) = answer.images
    expected = np.full((32, 64), 2, dtype=np.uint8)
    expected[:, :16] = 1
    expected[:, 16:32] = 3
    drawn = Image.open(io.BytesIO(image.png))
    assert drawn.size == (64, 32)
    assert drawn.mode == {"mask": "L", "color": "P", "overlay": "RGB"}[style]
    if style == "mask":
        np.testing.assert_array_equal(np.asarray(drawn), expected)
    assert image.fractions == {"pet": 0.25, "background": 0.5, "border": 0.25}


def test_infer_tensors_runs_a_batch_through_the_model(test_models_dir: Path) -> None:
    batch = np.zeros((2, 8, 8, 3), dtype=np.float32)
    batch[0, ..., 1] = 200
    batch[1, ..., 2] = 100
    answer = with_engine(
        test_models_dir, lambda engine: engine.infer_tensors("colours", 1, {"image": batch}, ["probs"])
    )
    assert answer.model == ModelId("colours", 1)
    assert list(answer.outputs) == ["probs"]
    expected = np.exp([[0, 20, 0], [0, 0, 10]])
    np.testing.assert_allclose(
        answer.outputs["probs"], expected / expected.sum(axis=1, keepdims=True), rtol=1e-5
    )


@pytest.mark.parametrize(
    ("inputs", "outputs", "fragment"),
    [
        ({"image": np.zeros((1, 4, 4, 3), np.float32)}, None, "must have shape [N, 8, 8, 3]"),
        ({"image": np.zeros((5, 8, 8, 3), np.float32)}, None, "1 <= N <= 4"),
        ({"pixels": np.zeros((1, 8, 8, 3), np.float32)}, None, "unknown input 'pixels'"),
        ({}, None, "missing input"),
        ({"image": np.zeros((1, 8, 8, 3), np.float32)}, ["logits"], "unknown output 'logits'"),
    ],
)
def test_tensors_that_do_not_fit_are_invalid_input(
    test_models_dir: Path, inputs: dict, outputs: list[str] | None, fragment: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        with_engine(test_models_dir, lambda engine: engine.infer_tensors("colours", None, inputs, outputs))
    assert fragment in refused.value.message
    assert refused.value.code == "invalid_input"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda engine: engine.run(CLASSIFY, [png(solid(RED))], ClassifyOptions(model="nope")),
            ModelNotFoundError,
        ),
        (
            lambda engine: engine.run(CLASSIFY, [png(solid(RED))], ClassifyOptions(model="boxes")),
            WrongTaskError,
        ),
        (
            lambda engine: engine.run(CLASSIFY, [b"not an image"] * 2, ClassifyOptions()),
            UnsupportedImageError,
        ),
        (lambda engine: engine.run(CLASSIFY, [png(solid(RED))] * 5, ClassifyOptions()), TooManyImagesError),
        (lambda engine: engine.infer_tensors("colours", 7, {}), ModelNotFoundError),
    ],
)
def test_refusals_are_coded_errors(test_models_dir: Path, call, error: type[Exception]) -> None:
    with pytest.raises(error):
        with_engine(test_models_dir, call)


def test_a_request_that_does_not_fit_the_queue_is_shed(test_models_dir: Path) -> None:
    images = [png(solid(RED))] * 2
    with pytest.raises(OverloadedError) as shed:
        with_engine(
            test_models_dir, lambda engine: engine.run(CLASSIFY, images, ClassifyOptions()), queue_size=1
        )
    assert shed.value.retry_after == 1


def test_a_call_that_would_overfill_the_decoder_queue_is_shed(test_models_dir: Path) -> None:
    # One decode thread and room for two waiting, two places taken by another call's images: a batch of two
    # would overfill it, one more image fits.
    async def with_two_places_taken(engine: Engine) -> tuple[object, list[str]]:
        await engine.intake.decoding.acquire(2)
        batch = await asyncio.gather(
            engine.run(CLASSIFY, [png(solid(RED))] * 2, ClassifyOptions()), return_exceptions=True
        )
        one = await engine.run(CLASSIFY, [png(solid(RED))], ClassifyOptions())
        return batch[0], [image.predictions[0].label for image in one.images]

    shed, labels = with_engine(test_models_dir, with_two_places_taken, decode_workers=1, queue_size=2)
    assert isinstance(shed, OverloadedError)
    assert shed.detail["budget"] == "decoding"
    assert shed.retry_after == 1
    assert labels == ["red"]


def test_not_ready_until_loaded(test_models_dir: Path) -> None:
    engine = Engine(EngineConfig(models_dir=test_models_dir, limits=LIMITS))
    assert engine.readiness().status == "loading"
    with pytest.raises(NotReadyError) as refused:
        asyncio.run(engine.run(CLASSIFY, [png(solid(RED))], ClassifyOptions()))
    assert refused.value.retry_after == 1


def test_a_timed_call_records_its_stages_and_model(test_models_dir: Path) -> None:
    async def timed(engine: Engine) -> timing.RequestTimings:
        timings, token = timing.begin("r1", "/classify")
        try:
            await engine.run(CLASSIFY, [png(solid(RED))], ClassifyOptions())
        finally:
            timing.end(token)
        return timings

    timings = with_engine(test_models_dir, timed)
    assert timings.model == "colours:2"
    assert set(timings.stages) == {"decode", "queue", "inference", "postprocess"}
    assert timing.current() is None


def test_a_request_over_its_pixel_limit_is_refused_from_the_headers(test_models_dir: Path) -> None:
    images = [png(solid(RED, (1024, 1024)))] * 4  # each under the per-image limit, 2**22 in all
    limits = RequestLimits(
        max_images=4, max_image_bytes=1 << 20, max_pixels=1 << 20, max_request_pixels=3 << 20
    )
    with pytest.raises(ImageTooLargeError) as refused:
        with_engine(
            test_models_dir, lambda engine: engine.run(CLASSIFY, images, ClassifyOptions()), limits=limits
        )
    assert refused.value.detail == {"pixels": 4 << 20, "limit": 3 << 20}


def test_batches_wait_for_the_pixel_budget_and_give_it_back(test_models_dir: Path) -> None:
    batch = [png(solid(RED, (1000, 500)))] * 2

    async def contend(engine: Engine) -> tuple[list[str], int]:
        # Waiting in turn is the point, not the budget's 2 s limit (the next test's): on a loaded machine the
        # fourth batch may wait longer for the three before it.
        engine.intake.pixels.wait_seconds = 600
        answers = await asyncio.gather(*(engine.run(CLASSIFY, batch, ClassifyOptions()) for _ in range(4)))
        labels = [image.predictions[0].label for answer in answers for image in answer.images]
        return labels, engine.intake.pixels.in_use

    # One batch's million pixels at a time: the others wait their turn rather than decode at once.
    labels, left = with_engine(test_models_dir, contend, pixel_budget=1_000_000)
    assert labels == ["red"] * 8
    assert left == 0


def test_a_batch_that_cannot_get_its_pixels_in_time_is_overloaded(test_models_dir: Path) -> None:
    async def held_elsewhere(engine: Engine) -> None:
        engine.intake.pixels.wait_seconds = 0.05
        await engine.intake.pixels.acquire(900_000)
        await engine.run(CLASSIFY, [png(solid(RED, (1000, 500)))] * 2, ClassifyOptions())

    with pytest.raises(OverloadedError) as refused:
        with_engine(test_models_dir, held_elsewhere, pixel_budget=1_000_000)
    assert refused.value.detail["budget"] == "pixel"


def test_a_single_upload_needs_no_pixel_budget(test_models_dir: Path) -> None:
    # It keeps only the model's input once decoded: decoding and finishing are bounded by their threads.
    async def held_elsewhere(engine: Engine) -> str:
        engine.intake.pixels.wait_seconds = 0.05
        await engine.intake.pixels.acquire(1_000_000)
        answer = await engine.run(CLASSIFY, [png(solid(RED, (1000, 1000)))], ClassifyOptions())
        return answer.images[0].predictions[0].label

    assert with_engine(test_models_dir, held_elsewhere, pixel_budget=1_000_000) == "red"


def reloadable(root: Path) -> Path:
    """A repository with one model, `m`, whose version 1 tells colours."""
    onnx_models.colour_classifier(root, name="m", version=1)
    return root


async def top_label(engine: Engine, version: int | None = None) -> str:
    answer = await engine.run(CLASSIFY, [png(solid(RED))], ClassifyOptions(model="m", version=version))
    return f"{answer.model.version}:{answer.images[0].predictions[0].label}"


def test_reload_serves_a_new_version_and_a_changed_file(tmp_path: Path) -> None:
    root = reloadable(tmp_path)

    async def steps(engine: Engine) -> list[object]:
        seen: list[object] = [await top_label(engine)]
        onnx_models.brightness_classifier(root, name="m", version=2)
        seen.append(await top_label(engine))  # not yet: nothing watches the directory
        index = await engine.reload()
        seen.append([(state.name, state.version, state.state) for state in index])
        seen.append(await top_label(engine))
        onnx_models.brightness_classifier(root, name="m", version=1)  # rewritten in place
        await engine.reload(["m"])
        seen.append(await top_label(engine, version=1))
        return seen

    assert with_engine(tmp_path, steps) == [
        "1:red",
        "1:red",
        [("m", "1", "READY"), ("m", "2", "READY")],
        "2:dark",
        "1:dark",
    ]


def test_a_broken_new_file_leaves_the_old_version_serving(tmp_path: Path) -> None:
    root = reloadable(tmp_path)

    async def steps(engine: Engine) -> tuple[str, list[tuple[str, str]], str]:
        (root / "m" / "1" / "model.onnx").write_bytes(b"half a file")
        index = await engine.reload()
        return (
            await top_label(engine),
            [(state.state, state.reason[:10]) for state in index],
            engine.readiness().status,
        )

    label, index, status = with_engine(tmp_path, steps)
    assert label == "1:red"
    assert index == [("READY", ""), ("UNAVAILABLE", "model.onnx")]
    assert status == "ok"


def test_removed_and_unloaded_versions_stop_serving_until_loaded_again(tmp_path: Path) -> None:
    root = reloadable(tmp_path)
    onnx_models.colour_classifier(root, name="m", version=2)

    async def steps(engine: Engine) -> list[object]:
        (root / "m" / "2" / "model.onnx").unlink()
        await engine.reload()
        seen: list[object] = [await top_label(engine)]
        await engine.unload("m")
        with pytest.raises(ModelNotFoundError):
            await top_label(engine)
        await engine.reload()  # a full rescan keeps an unloaded model unloaded
        seen.append([state.name for state in engine.index()])
        await engine.reload(["m"])
        seen.append(await top_label(engine))
        return seen

    assert with_engine(tmp_path, steps) == ["1:red", [], "1:red"]


def test_a_call_in_flight_finishes_on_the_version_it_started_on(tmp_path: Path) -> None:
    root = reloadable(tmp_path)

    async def steps(engine: Engine) -> tuple[str, str]:
        old = engine.find("m", 1)
        with old.in_use():  # as a call between its model lookup and its batch would hold it
            onnx_models.brightness_classifier(root, name="m", version=1)
            await engine.reload()
            assert engine.find("m", 1) is not old
            results = await old.batcher.infer([np.zeros((8, 8, 3), dtype=np.float32)])
        await asyncio.sleep(0.05)
        return str(results[0].outputs["probabilities"].shape), await top_label(engine)

    assert with_engine(tmp_path, steps) == ("(3,)", "1:dark")


GOOD, TEXT = png(solid(RED)), b"not an image"
CUT = png(solid((0, 0, 255), (40, 40)))[:60]
NAMES = ["red.png", "notes.txt", "cut.png"]


def test_a_partial_batch_answers_its_good_images_and_puts_each_failure_in_its_place(
    test_models_dir: Path,
) -> None:
    async def both(engine: Engine) -> tuple[object, object]:
        mixed = await engine.run(CLASSIFY, [GOOD, TEXT, CUT], ClassifyOptions(partial=True), NAMES)
        alone = await engine.run(CLASSIFY, [GOOD], ClassifyOptions())
        return mixed, alone

    mixed, alone = with_engine(test_models_dir, both)
    good, text, cut = mixed.images
    assert good == alone.images[0]
    assert (text.code, text.detail) == ("unsupported_image", {"index": 1, "filename": "notes.txt"})
    assert (cut.code, cut.detail) == ("corrupt_image", {"index": 2, "filename": "cut.png"})


def test_a_partial_call_whose_images_all_fail_answers_their_errors(test_models_dir: Path) -> None:
    answer = with_engine(
        test_models_dir, lambda engine: engine.run(DETECT, [TEXT, CUT], DetectOptions(partial=True))
    )
    assert [(error.code, error.detail) for error in answer.images] == [
        ("unsupported_image", {"index": 0}),
        ("corrupt_image", {"index": 1}),
    ]


def test_one_image_of_a_partial_call_fails_in_its_place(test_models_dir: Path) -> None:
    answer = with_engine(
        test_models_dir,
        lambda engine: engine.run(SEGMENT, [TEXT], SegmentOptions(partial=True), ["notes.txt"]),
    )
    assert [error.detail for error in answer.images] == [{"index": 0, "filename": "notes.txt"}]


@pytest.mark.parametrize("images", [[GOOD, CUT, GOOD], [CUT]], ids=["batch", "one"])
def test_without_partial_a_failed_image_fails_the_call_and_is_named(
    test_models_dir: Path, images: list[bytes]
) -> None:
    names = NAMES[: len(images)]
    with pytest.raises(CorruptImageError) as refused:
        with_engine(test_models_dir, lambda engine: engine.run(CLASSIFY, images, ClassifyOptions(), names))
    assert refused.value.detail == {"index": images.index(CUT), "filename": names[images.index(CUT)]}


GREY = (128, 128, 128)


def test_a_model_with_a_reference_says_which_images_are_unfamiliar(tmp_path: Path) -> None:
    onnx_models.add_reference(onnx_models.colour_classifier(tmp_path), onnx_models.COLOUR_REFERENCE)
    images = [png(solid(RED, (16, 16))), png(solid(GREY, (16, 16)))]

    async def classify_then_look(engine: Engine) -> tuple[Answer, MonitorReport | None]:
        answer = await engine.run(CLASSIFY, images, ClassifyOptions())
        return answer, engine.monitor("colours")[1]

    answer, report = with_engine(tmp_path, classify_then_look)
    # Grey is a third each: under the reference's 0.9.
    assert [image.unfamiliar for image in answer.images] == [False, True]
    assert report is not None
    assert (report.images, report.unfamiliar) == (2, 1)


def test_a_model_without_a_reference_judges_nothing(test_models_dir: Path) -> None:
    answer = with_engine(
        test_models_dir, lambda engine: engine.run(CLASSIFY, [png(solid(GREY))], ClassifyOptions())
    )
    assert answer.images[0].unfamiliar is None


def test_with_monitoring_off_nothing_is_watched(tmp_path: Path) -> None:
    onnx_models.add_reference(onnx_models.colour_classifier(tmp_path), onnx_models.COLOUR_REFERENCE)

    async def classify_then_look(engine: Engine) -> tuple[Answer, MonitorReport | None]:
        answer = await engine.run(CLASSIFY, [png(solid(GREY))], ClassifyOptions())
        return answer, engine.monitor("colours")[1]

    answer, report = with_engine(tmp_path, classify_then_look, monitoring=MonitorConfig(enabled=False))
    assert answer.images[0].unfamiliar is None
    assert report is None


def red_corner(width: int = 8, height: int = 8) -> bytes:
    """Grey, with its left half's top half red: the hottest cells of the `red` map."""
    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[: height // 2, : width // 2] = RED
    return png(Image.fromarray(pixels))


def test_explain_gives_the_top_class_and_its_map_over_the_image(explaining_models_dir: Path) -> None:
    async def work(engine: Engine) -> Answer:
        return await engine.run(EXPLAIN, [red_corner()], ExplainOptions(model="colours-explained"))

    explained = with_engine(explaining_models_dir, work).images[0]
    assert (explained.label, explained.class_id) == ("red", 0)
    expected = np.zeros((8, 8))
    expected[:4, :4] = 1
    assert np.array_equal(explained.grid, expected)
    assert explained.png is None


def test_explain_crops_a_letterboxed_map_to_the_image(explaining_models_dir: Path) -> None:
    async def work(engine: Engine) -> Answer:
        options = ExplainOptions(model="colours-letterboxed", **{"class": "green"})
        return await engine.run(EXPLAIN, [red_corner(8, 4)], options)

    explained = with_engine(explaining_models_dir, work).images[0]
    # 8x4 letterboxed into 8x8 (no resize): rows 2..5 of the map hold the image; green is least where red is.
    assert (explained.label, explained.grid.shape) == ("green", (4, 8))
    assert explained.grid[:2, :4].max() == 0
    assert explained.grid[2:, 4:].min() == 1


def test_explain_draws_the_heat_over_the_image_at_its_size(explaining_models_dir: Path) -> None:
    async def work(engine: Engine) -> Answer:
        return await engine.run(
            EXPLAIN_PICTURE, [red_corner(300, 200)], ExplainOptions(model="colours-explained")
        )

    picture = Image.open(io.BytesIO(with_engine(explaining_models_dir, work).images[0].png))
    assert (picture.format, picture.size) == ("PNG", (300, 200))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (ExplainOptions(model="colours"), CannotExplainError),
        (ExplainOptions(model="colours-explained", **{"class": "purple"}), UnknownLabelError),
    ],
    ids=["no heatmap", "unknown label"],
)
def test_explain_refuses_before_decoding(
    explaining_models_dir: Path, options: ExplainOptions, error: type
) -> None:
    async def work(engine: Engine) -> None:
        with pytest.raises(error):
            await engine.run(EXPLAIN, [b"not even an image"], options)

    with_engine(explaining_models_dir, work)
