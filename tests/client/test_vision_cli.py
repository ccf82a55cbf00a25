"""The `vision` command (client/vision_client/cli.py) as people and scripts run it, against live servers:
readable tables, `--json`, batches, drawn boxes, written masks, and exit statuses that tell failures apart."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_KEYS, REPO_ROOT, LiveServer, ServerFactory
from PIL import Image, ImageColor
from vision_client.api.options import (
    ClassifyOptions,
    DetectOptions,
    ExplainOptions,
    ModelChoice,
    SegmentOptions,
)
from vision_client.api.schemas import ClassifyResponse, DetectResponse
from vision_client.cli import (
    BAD_REQUEST,
    BOX_COLOURS,
    READER_GONE,
    REFUSED_KEY,
    UNAVAILABLE,
    UNREACHABLE,
    USAGE,
    caption_corner,
    parser,
)

from service.core.tasks.segment import TRIMAP_COLORS

EXAMPLES = REPO_ROOT / "docs" / "examples"
VISION = Path(sys.executable).parent / "vision"


def vision(
    *arguments: str | Path, url: str | None = None, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`vision ...` as installed, with VISION_URL and VISION_API_KEY from the arguments."""
    env = {k: v for k, v in os.environ.items() if k not in ("VISION_URL", "VISION_API_KEY")}
    env.update({"VISION_URL": url} if url else {})
    env.update({"VISION_API_KEY": key} if key else {})
    return subprocess.run(
        [VISION, *map(str, arguments)], capture_output=True, text=True, timeout=120, env=env
    )


def test_classify_prints_a_table_of_the_top_classes(bundled_server: LiveServer) -> None:
    done = vision(
        "classify", EXAMPLES / "star.jpg", EXAMPLES / "shapes.jpg", "--top-k", "3", url=bundled_server.url
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "model shapes-classifier:1"
    assert lines[1].split() == ["file", "label", "probability"]
    assert lines[2].split() == ["star.jpg", "star", "1.000"]
    assert len(lines) == 2 + 2 * 3
    assert lines[5].startswith("shapes.jpg")


def test_json_over_many_files_keeps_every_answer_in_order(bundled_server: LiveServer) -> None:
    files = [EXAMPLES / "digit.png", EXAMPLES / "star.jpg"] * 10
    done = vision(
        "--url", bundled_server.url, "--json", "classify", *files, "--model", "digits", "--top-k", "1"
    )
    assert done.returncode == 0, done.stderr
    answer = ClassifyResponse.model_validate_json(done.stdout)
    assert [r.image.width for r in answer.results] == [32, 141] * 10
    assert [r.predictions[0].label for r in answer.results][::2] == ["7"] * 10


def test_detect_draws_each_box_in_its_class_colour(bundled_server: LiveServer, tmp_path: Path) -> None:
    drawn = tmp_path / "out.png"
    done = vision("--json", "detect", EXAMPLES / "shapes.jpg", "--draw", drawn, url=bundled_server.url)
    assert done.returncode == 0, done.stderr
    found = DetectResponse.model_validate_json(done.stdout).results[0].detections
    picture = np.asarray(Image.open(drawn).convert("RGB"))
    assert picture.shape[:2] == (121, 127)
    for detection in found:
        colour = ImageColor.getrgb(BOX_COLOURS[detection.class_id % len(BOX_COLOURS)])
        x = round((detection.box.x_min + detection.box.x_max) / 2)
        bottom_edge = picture[round(detection.box.y_max) - 1 : round(detection.box.y_max) + 1, x]
        assert (bottom_edge == colour).all(axis=1).any(), detection.label


def test_detect_draws_several_files_into_a_folder(bundled_server: LiveServer, tmp_path: Path) -> None:
    done = vision(
        "detect",
        EXAMPLES / "shapes.jpg",
        EXAMPLES / "star.jpg",
        "--draw",
        tmp_path / "drawn",
        url=bundled_server.url,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["shapes-boxes.png", "star-boxes.png"]
    first_column = [line.split()[0] for line in done.stdout.splitlines()[2:] if not line.startswith(" ")]
    assert first_column == ["shapes.jpg", "star.jpg"]


@pytest.mark.parametrize("command", [["detect", "--draw"], ["segment", "-o"]])
def test_several_files_and_a_files_name_for_their_pictures_is_refused_before_sending(
    tmp_path: Path, command: list[str]
) -> None:
    target = tmp_path / "one.png"
    files = [EXAMPLES / "shapes.jpg", EXAMPLES / "star.jpg"]
    # No service at this address: the refusal comes before any request.
    done = vision(command[0], *files, command[1], target, url="http://127.0.0.1:9")
    assert done.returncode == USAGE
    flag = "--draw" if command[0] == "detect" else "--output"
    assert (
        done.stderr.strip()
        == f"vision: {flag} {target} names a file, but 2 images need a folder for their PNGs"
    )
    assert not target.exists()


def test_global_options_after_the_command_and_the_version(bundled_server: LiveServer) -> None:
    done = vision(
        "classify", EXAMPLES / "star.jpg", "--json", "--url", bundled_server.url, url="http://127.0.0.1:9"
    )
    assert done.returncode == 0, done.stderr
    assert ClassifyResponse.model_validate_json(done.stdout).results[0].predictions[0].label == "star"
    version = vision("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"vision {importlib.metadata.version('vision-service-client')}"


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["table", "json"])
def test_a_reader_that_stops_early_ends_it_quietly(bundled_server: LiveServer, output: list[str]) -> None:
    # `vision classify *.jpg | head -1`: the read end is closed before the command writes anything.
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "wb") as closed_pipe:
        done = subprocess.run(
            [VISION, "--url", bundled_server.url, *output, "classify", EXAMPLES / "star.jpg"],
            stdout=closed_pipe,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.stderr == ""
    assert done.returncode == READER_GONE


@pytest.mark.parametrize(
    ("box", "corner"),
    [
        ((10, 30, 40, 60), (10, 18)),  # room above the box: the caption sits on it
        ((10, 5, 40, 60), (10, 5)),  # at the top edge: just inside the box
        ((95, 30, 100, 60), (70, 18)),  # at the right edge: shifted left onto the image
    ],
)
def test_a_caption_stays_on_the_image(box: tuple[int, int, int, int], corner: tuple[int, int]) -> None:
    assert caption_corner(box, (30, 12), (100, 80)) == corner


def test_segment_writes_the_trimap_and_prints_the_fractions(
    bundled_server: LiveServer, tmp_path: Path
) -> None:
    mask = tmp_path / "mask.png"
    done = vision("segment", EXAMPLES / "star.jpg", "-o", mask, "--style", "color", url=bundled_server.url)
    assert done.returncode == 0, done.stderr
    written = Image.open(mask)
    assert (written.format, written.size) == ("PNG", (141, 135))
    colours = {tuple(int(c) for c in pixel) for pixel in np.asarray(written.convert("RGB")).reshape(-1, 3)}
    assert colours == set(TRIMAP_COLORS[1:])
    assert done.stdout.splitlines()[2].split()[:2] == ["star.jpg", str(mask)]


def test_explain_writes_each_heat_map_and_prints_its_class(
    bundled_server: LiveServer, tmp_path: Path
) -> None:
    files = [EXAMPLES / "star.jpg", EXAMPLES / "shapes.jpg"]
    done = vision("explain", *files, "-o", tmp_path / "heat", "--class", "star", url=bundled_server.url)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[2] for row in rows] == ["star", "star"]
    for file in files:
        written = Image.open(tmp_path / "heat" / f"{file.stem}-heat.png")
        assert (written.format, written.size) == ("PNG", Image.open(file).size)
    refused = vision(
        "explain", files[0], "-o", tmp_path / "x.png", "--model", "digits", url=bundled_server.url
    )
    assert refused.returncode == BAD_REQUEST
    assert "cannot_explain" in refused.stderr


def test_models_and_health(bundled_server: LiveServer) -> None:
    models = vision("models", url=bundled_server.url)
    assert models.returncode == 0, models.stderr
    rows = {line.split()[0]: line.split() for line in models.stdout.splitlines()[1:]}
    assert rows["shapes-detector"][:3] == ["shapes-detector", "detect", "detect"]
    health = vision("health", url=bundled_server.url)
    assert (health.returncode, health.stdout.split(";")[0]) == (0, "ok")


def test_monitor_prints_each_signals_drift(start_server: ServerFactory) -> None:
    watched = start_server(REPO_ROOT / "models", monitor_minimum=2)
    assert (
        vision("classify", EXAMPLES / "star.jpg", "--model", "shapes-classifier", url=watched.url).returncode
        == 0
    )
    early = vision("monitor", "shapes-classifier", url=watched.url)
    assert early.returncode == 0, early.stderr
    lines = early.stdout.splitlines()
    assert lines[0].startswith("shapes-classifier:1: 1 of the last 1000 images against 3000 of ")
    assert lines[0].endswith("; 0 unfamiliar")
    assert lines[1].split() == ["signal", "psi"]
    assert [line.split()[0] for line in lines[2:]] == [
        "confidence",
        "brightness",
        "aspect_ratio",
        "megapixels",
        "class",
    ]
    assert lines[2].split()[1:] == ["(under", "2", "images)"]

    assert (
        vision("classify", EXAMPLES / "star.jpg", "--model", "shapes-classifier", url=watched.url).returncode
        == 0
    )
    late = vision("monitor", "shapes-classifier", "--version", "1", url=watched.url)
    verdicts = {line.split()[0]: line.split()[2] for line in late.stdout.splitlines()[2:]}
    # Two copies of one picture are nothing like 3,000 scenes: one class, one size.
    assert verdicts["class"] == "drifted"
    document = json.loads(vision("--json", "monitor", "shapes-classifier", url=watched.url).stdout)
    assert document["images"] == 2
    missing = vision("monitor", "nothing", url=watched.url)
    assert missing.returncode == BAD_REQUEST
    assert "model_not_found" in missing.stderr or "nothing" in missing.stderr


def test_health_of_a_service_that_is_not_ready_exits_6(start_server: ServerFactory, tmp_path: Path) -> None:
    empty = start_server(tmp_path, wait=False)
    empty.wait("/healthz/live")
    done = vision("--json", "health", url=empty.url)
    assert done.returncode == UNAVAILABLE
    assert json.loads(done.stdout)["status"] in ("loading", "unavailable")


def test_api_keys_from_the_option_or_the_environment(bundled_guarded_server: LiveServer) -> None:
    url, star = bundled_guarded_server.url, EXAMPLES / "star.jpg"
    assert vision("--api-key", BUNDLED_KEYS["api"], "classify", star, url=url).returncode == 0
    assert vision("classify", star, url=url, key=BUNDLED_KEYS["api"]).returncode == 0
    wrong = vision("classify", star, url=url, key="not-the-key")
    assert wrong.returncode == REFUSED_KEY
    assert wrong.stderr.strip() == "vision: 403 forbidden: the API key is not accepted"
    assert vision("classify", star, url=url).returncode == REFUSED_KEY


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (["classify", "missing.jpg"], USAGE, "vision: cannot read missing.jpg: No such file or directory"),
        (
            ["classify", str(EXAMPLES / "star.jpg"), "--model", "nope"],
            5,
            "vision: 404 model_not_found: no model named 'nope'",
        ),
        (
            ["detect", str(EXAMPLES / "star.jpg"), "--score-threshold", "2"],
            5,
            "vision: 422 invalid_parameter:",
        ),
        (["segment", str(EXAMPLES / "star.jpg")], USAGE, "the following arguments are required: -o/--output"),
    ],
)
def test_failures_exit_with_their_status_and_one_line(
    bundled_server: LiveServer, arguments: list[str], status: int, message: str
) -> None:
    done = vision(*arguments, url=bundled_server.url)
    assert done.returncode == status
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_service_exits_3() -> None:
    done = vision("--timeout", "1", "models", url="http://127.0.0.1:9")
    assert done.returncode == UNREACHABLE
    assert done.stderr.splitlines()[-1].startswith("vision: unreachable: cannot reach http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("classify", ClassifyOptions),
        ("detect", DetectOptions),
        ("segment", SegmentOptions),
        ("explain", ExplainOptions),
    ],
)
def test_each_task_option_is_a_flag_described_as_the_api_describes_it(
    command: str, options: type[ModelChoice]
) -> None:
    subcommands = next(
        action for action in parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    flags = {action.dest: action for action in subcommands.choices[command]._actions}
    assert "partial" not in flags  # always asked: every file is reported
    for name, field in options.model_fields.items():
        if name == "partial":
            continue
        assert field.description in flags[name].help
        assert flags[name].default is None  # not sent unless given: the service's default holds
        if field.default is not None:
            assert f"(default {field.default})" in flags[name].help


def forty_files(folder: Path) -> list[Path]:
    """38 photos, a text file 11th and a truncated JPEG 30th."""
    star = (EXAMPLES / "star.jpg").read_bytes()
    files = []
    for index in range(40):
        name, data = f"star-{index:02}.jpg", star
        if index == 10:
            name, data = "notes.txt", b"not a picture"
        elif index == 29:
            name, data = "cut.jpg", star[: len(star) // 2]
        (folder / name).write_bytes(data)
        files.append(folder / name)
    return files


def test_forty_files_two_bad_print_38_answers_name_the_2_and_exit_5(
    bundled_server: LiveServer, tmp_path: Path
) -> None:
    done = vision("classify", *forty_files(tmp_path), "--top-k", "1", url=bundled_server.url)
    assert done.returncode == BAD_REQUEST
    rows = done.stdout.splitlines()[2:]
    assert [row.split() for row in rows] == [
        [f"star-{i:02}.jpg", "star", "1.000"] for i in range(40) if i not in (10, 29)
    ]
    assert done.stderr.splitlines() == [
        "vision: notes.txt: unsupported_image: not an image, or not one of JPEG, PNG, WebP, BMP, GIF or TIFF",
        f"vision: cut.jpg: corrupt_image: {done.stderr.splitlines()[1].split(': ', 3)[3]}",
    ]
    assert "truncated" in done.stderr.splitlines()[1]


def test_forty_files_as_json_hold_each_error_at_its_index(bundled_server: LiveServer, tmp_path: Path) -> None:
    done = vision("detect", *forty_files(tmp_path), "--json", url=bundled_server.url)
    assert done.returncode == BAD_REQUEST
    results = json.loads(done.stdout)["results"]
    failed = {index: result["error"] for index, result in enumerate(results) if "error" in result}
    assert {index: error["detail"] for index, error in failed.items()} == {
        10: {"index": 10, "filename": "notes.txt"},
        29: {"index": 29, "filename": "cut.jpg"},
    }
    assert all("detections" in result for index, result in enumerate(results) if index not in failed)


def test_segment_writes_the_good_files_masks_only(bundled_server: LiveServer, tmp_path: Path) -> None:
    files = forty_files(tmp_path)[8:12]
    done = vision("segment", *files, "-o", tmp_path / "masks", url=bundled_server.url)
    assert done.returncode == BAD_REQUEST
    assert sorted(path.name for path in (tmp_path / "masks").iterdir()) == [
        "star-08-mask.png",
        "star-09-mask.png",
        "star-11-mask.png",
    ]
    assert done.stderr.startswith("vision: notes.txt: unsupported_image")


def test_a_request_refused_whole_fails_its_files_and_the_next_is_still_sent(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # Three photos' pixels per request: the first request, of 8 files, is refused; the second, of 1, answered.
    pixels = 3 * 141 * 135
    server = start_server(REPO_ROOT / "models", max_pixels=pixels, max_request_pixels=pixels)
    files = [path for path in forty_files(tmp_path) if path.name.startswith("star")][:9]
    done = vision("classify", *files, "--top-k", "1", url=server.url)
    assert done.returncode == BAD_REQUEST
    assert [row.split()[0] for row in done.stdout.splitlines()[2:]] == ["star-08.jpg"]
    refused = done.stderr.splitlines()
    assert [line.split(": ")[1:3] for line in refused] == [
        [f"star-{i:02}.jpg", "image_too_large"] for i in range(8)
    ]
