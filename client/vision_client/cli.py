"""`vision`: classify, detect, segment and explain image files with a running vision-service, from a shell.

Built on vision_client.client, so it needs no onnxruntime. The `[full]` extra adds Pillow, which draws
`--draw`, and tqdm, which shows a progress bar on a terminal.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import importlib.util
import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from vision_client.api.options import (
    ClassifyOptions,
    DetectOptions,
    ExplainOptions,
    ModelChoice,
    SegmentOptions,
)
from vision_client.api.schemas import (
    ClassifyResponse,
    DetectResponse,
    DetectResult,
    ErrorBody,
    ExplainResponse,
    FailedImage,
    Health,
    ModelsResponse,
    MonitorResponse,
    SegmentResponse,
)
from vision_client.client import (
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_URL,
    Client,
    Upload,
    VisionError,
    chunks,
    counted_from,
    joined,
    uploads,
)

# Exit statuses scripts can tell apart.
OK, FAILED, USAGE, UNREACHABLE, REFUSED_KEY, BAD_REQUEST, UNAVAILABLE = 0, 1, 2, 3, 4, 5, 6
# What a shell reports for a command SIGPIPE ended (128 + 13), as `git log | head` gives.
READER_GONE = 141
EXIT_CODES = f"""exit status:
  {OK}  done
  {USAGE}  bad usage, or a file that cannot be read
  {UNREACHABLE}  the service cannot be reached, or did not answer in time
  {REFUSED_KEY}  the API key is missing or wrong (401, 403)
  {BAD_REQUEST}  the service refused the request or a file (400, 404, 413, 415, 422): the message says why
  {UNAVAILABLE}  the service is overloaded or not ready (503, after retries), or failed (5xx)
  {READER_GONE}  standard output was closed before everything was written (`| head`)
"""
Answer = TypeVar("Answer", ClassifyResponse, DetectResponse, SegmentResponse, ExplainResponse)
# Files per request: few enough that the progress bar moves, enough for the server to batch them.
BATCH = 8
# The CLI reports every file: the good ones' answers, and each failed one by name (and exits 5).
EVERY_FILE = {"partial": True}
# Box outlines by class id; cycled for models with more classes.
BOX_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        files = [_read(path) for path in getattr(options, "files", [])]
        with Client(
            options.url, api_key=options.api_key, timeout=options.timeout, on_retry=_say_retry
        ) as vision:
            status = options.command(vision, options, files)
            sys.stdout.flush()
            return status
    except BrokenPipeError:
        # Python's own flush at exit would fail again on the closed pipe: point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return READER_GONE
    except VisionError as error:
        print(f"vision: {error}", file=sys.stderr)
        return exit_status(error)
    except UsageError as error:
        print(f"vision: {error}", file=sys.stderr)
        return USAGE


class UsageError(Exception):
    """A file or option the command cannot use, found before anything is sent."""


def exit_status(error: VisionError) -> int:
    if error.status is None:
        return UNREACHABLE if error.code in ("unreachable", "timeout") else FAILED
    if error.status in (401, 403):
        return REFUSED_KEY
    return BAD_REQUEST if error.status < 500 else UNAVAILABLE


def classify(vision: Client, options: argparse.Namespace, files: list[Upload]) -> int:
    chosen = _chosen(options, ClassifyOptions)
    answer, status = _in_batches(files, lambda batch: vision.classify(batch, **chosen))
    if options.json:
        print(answer.model_dump_json(indent=2))
        return status
    rows = [
        [upload.name if rank == 0 else "", p.label, f"{p.probability:.3f}"]
        for _, upload, result in _answered(files, answer)
        for rank, p in enumerate(result.predictions)
    ]
    _table(["file", "label", "probability"], rows, f"{answer.model.name}:{answer.model.version}")
    return status


def detect(vision: Client, options: argparse.Namespace, files: list[Upload]) -> int:
    chosen = _chosen(options, DetectOptions)
    targets = _drawing_targets(options.draw, files) if options.draw else []
    answer, status = _in_batches(files, lambda batch: vision.detect(batch, **chosen))
    if options.draw:
        for upload, result, target in zip(files, answer.results, targets, strict=True):
            if not isinstance(result, FailedImage):
                draw_boxes(upload.data, result, target)
    if options.json:
        print(answer.model_dump_json(indent=2))
        return status
    rows = []
    for _, upload, result in _answered(files, answer):
        found = [[d.label, f"{d.score:.2f}", f"{d.iou:.2f}", _box(d.box)] for d in result.detections]
        rows += [
            [upload.name if rank == 0 else "", *row]
            for rank, row in enumerate(found or [["(nothing)", "", "", ""]])
        ]
    _table(["file", "label", "score", "iou", "box (x_min, y_min, x_max, y_max)"], rows, _model_line(answer))
    return status


def segment(vision: Client, options: argparse.Namespace, files: list[Upload]) -> int:
    chosen = _chosen(options, SegmentOptions)
    style = chosen.get("style") or SegmentOptions.model_fields["style"].default
    targets = _targets(options.output, files, style, "--output")
    answer, status = _in_batches(files, lambda batch: vision.segment_json(batch, **chosen))
    for index, _, result in _answered(files, answer, quiet=True):
        targets[index].write_bytes(base64.b64decode(result.png_base64))
    if options.json:
        print(answer.model_dump_json(indent=2, exclude={"results": {"__all__": {"png_base64"}}}))
        return status
    rows = [
        [
            upload.name,
            str(targets[index]),
            *(f"{result.fractions[label]:.1%}" for label in ("pet", "background", "border")),
        ]
        for index, upload, result in _answered(files, answer)
    ]
    _table(["file", "written", "pet", "background", "border"], rows, _model_line(answer))
    return status


def explain(vision: Client, options: argparse.Namespace, files: list[Upload]) -> int:
    """Each file's heat map as PNG: the grids in batches, then each picture for the class its grid shows."""
    chosen = _chosen(options, ExplainOptions)
    targets = _targets(options.output, files, "heat", "--output")
    answer, status = _in_batches(files, lambda batch: vision.explain_json(batch, **chosen))
    for index, upload, result in _answered(files, answer, quiet=True):
        model = {"model": answer.model.name, "version": answer.model.version}
        picture = {**chosen, **model, "class_": result.label}
        targets[index].write_bytes(vision.explain(upload, **picture))
    if options.json:
        print(answer.model_dump_json(indent=2))
        return status
    rows = [
        [upload.name, str(targets[index]), result.label, f"{result.score:.3f}"]
        for index, upload, result in _answered(files, answer)
    ]
    _table(["file", "written", "class", "probability"], rows, _model_line(answer))
    return status


def models(vision: Client, options: argparse.Namespace, files: list[Upload]) -> int:
    answer: ModelsResponse = vision.models()
    if options.json:
        print(answer.model_dump_json(indent=2))
        return OK
    rows = [
        [
            m.name,
            m.task,
            m.default_for or "",
            ", ".join(str(v.version) for v in m.versions),
            str(len(m.versions[-1].labels)),
            m.versions[-1].provider,
        ]
        for m in answer.models
    ]
    _table(["name", "task", "default for", "versions", "labels", "runs on"], rows)
    for failure in answer.failures:
        print(f"refused: {failure.name}/{failure.version}: {failure.key}: {failure.message}")
    return OK


def monitor(vision: Client, options: argparse.Namespace, files: list[Upload]) -> int:
    answer: MonitorResponse = vision.monitor(options.name, options.version)
    if options.json:
        print(answer.model_dump_json(indent=2))
        return OK
    model = f"{answer.model.name}:{answer.model.version}"
    if not answer.monitoring:
        print(f"{model}: not watched (VISION_MONITOR is off)")
        return OK
    if answer.reference is None:
        print(f"{model}: its file carries no reference: add one with `python -m training sign --reference`")
        return OK
    print(
        f"{model}: {answer.images} of the last {answer.window} images against {answer.reference.images} of "
        f"{answer.reference.source}; {answer.unfamiliar} unfamiliar"
    )
    rows = [[signal.name, _psi(signal.psi, answer.minimum)] for signal in answer.signals]
    _table(["signal", "psi"], rows)
    return OK


def _psi(index: float | None, minimum: int) -> str:
    if index is None:
        return f"(under {minimum} images)"
    verdict = "drifted" if index > 0.2 else "moving" if index > 0.1 else "stable"
    return f"{index:.3f} {verdict}"


def health(vision: Client, options: argparse.Namespace, files: list[Upload]) -> int:
    answer: Health = vision.ready()
    if options.json:
        print(answer.model_dump_json(indent=2))
    else:
        loaded = f"{len(answer.models)} model versions: {', '.join(answer.models)}" if answer.models else ""
        print(
            f"{answer.status}"
            + (f" ({answer.reason})" if answer.reason else "")
            + (f"; {loaded}" if loaded else "")
        )
    return OK if answer.status == "ok" else UNAVAILABLE


def draw_boxes(image: bytes, result: DetectResult, target: Path) -> None:
    """The image with each detection's box and label drawn on it, as a PNG."""
    from PIL import Image, ImageDraw, ImageOps

    picture = ImageOps.exif_transpose(Image.open(io.BytesIO(image))).convert("RGB")
    pen = ImageDraw.Draw(picture)
    width = max(1, round(max(picture.size) / 200))
    for found in result.detections:
        colour = BOX_COLOURS[found.class_id % len(BOX_COLOURS)]
        box = (found.box.x_min, found.box.y_min, found.box.x_max, found.box.y_max)
        pen.rectangle(box, outline=colour, width=width)
        caption = f"{found.label} {found.score:.2f}"
        left, top, right, bottom = pen.textbbox((0, 0), caption)
        x, y = caption_corner(box, (right - left + 3, bottom - top + 2), picture.size)
        pen.rectangle((x, y, x + right - left + 2, y + bottom - top + 2), fill=colour)
        pen.text((x + 1 - left, y - top + 1), caption, fill="white")
    picture.save(target, format="PNG")


def _drawing_targets(path: Path, files: list[Upload]) -> list[Path]:
    """Where `--draw` writes each file's boxes; refused before any request where Pillow is missing."""
    if importlib.util.find_spec("PIL") is None:
        raise UsageError("--draw needs Pillow: pip install 'vision-service-client[full]'")
    return _targets(path, files, "boxes", "--draw")


def caption_corner(
    box: tuple[float, float, float, float], caption: tuple[int, int], image: tuple[int, int]
) -> tuple[float, float]:
    """Top-left corner of a box's caption: above the box where there is room, else just inside its top, and
    shifted left as far as needed to stay on the image."""
    (x_min, y_min, _, _), (width, height) = box, caption
    y = y_min - height if y_min >= height else y_min
    x = min(x_min, image[0] - width)
    return max(0.0, x), max(0.0, min(y, image[1] - height))


def _in_batches(files: list[Upload], send: Callable[[list[Upload]], Answer]) -> tuple[Answer, int]:
    """One answer for every file, sent a request at a time, with a progress bar on a terminal where tqdm is
    installed, and the exit status it earns. A request the service refuses as a whole (too many pixels, say,
    or overloaded after retries) makes each of its files a failure, and the next request is sent all the same;
    one refused for its key, or never answered, stops the command."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    answers, refused = [], []
    progress = (
        tqdm(total=len(files), unit="image", file=sys.stderr, disable=None, leave=False) if tqdm else None
    )
    try:
        for number, batch in enumerate(chunks(files, BATCH)):
            try:
                answers.append(counted_from(number * BATCH, send(batch)))
            except VisionError as error:
                if exit_status(error) in (UNREACHABLE, REFUSED_KEY) or len(files) <= BATCH:
                    raise
                refused.append((number * BATCH, batch, error))
            if progress:
                progress.update(len(batch))
    finally:
        if progress:
            progress.close()
    if not answers:
        raise refused[0][2]
    answer = joined(answers) if not refused else _with_refused(answers, refused)
    failed = any(isinstance(result, FailedImage) for result in answer.results)
    worst = max([exit_status(error) for _, _, error in refused], default=BAD_REQUEST if failed else OK)
    return answer, worst


def _with_refused(answers: list[Answer], refused: list[tuple[int, list[Upload], VisionError]]) -> Answer:
    """The answers, with each file of a refused request a FailedImage in its place."""
    results: list[Any] = list(joined(answers).results)
    for first, batch, error in sorted(refused, key=lambda entry: entry[0]):
        failures = [
            FailedImage(
                error=ErrorBody(
                    code=error.code,
                    message=error.message,
                    detail={"index": first + offset, "filename": upload.name},
                )
            )
            for offset, upload in enumerate(batch)
        ]
        results[first:first] = failures
    return answers[0].model_copy(update={"results": results})


def _answered(files: list[Upload], answer: Answer, *, quiet: bool = False) -> list[tuple[int, Upload, Any]]:
    """The files that have an answer, with their position and answer; each one that failed is said on
    stderr, by name, unless `quiet`."""
    answered = []
    for index, (upload, result) in enumerate(zip(files, answer.results, strict=True)):
        if not isinstance(result, FailedImage):
            answered.append((index, upload, result))
        elif not quiet:
            print(f"vision: {upload.name}: {result.error.code}: {result.error.message}", file=sys.stderr)
    return answered


def _targets(path: Path, files: list[Upload], suffix: str, flag: str) -> list[Path]:
    """Where each file's picture goes: `path` itself for one file, `path/<name>-<suffix>.png` for several.
    Several files and a file's name (`one.png`) is a usage error, found before anything is sent."""
    if len(files) == 1 and not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        return [path]
    if path.suffix and not path.is_dir():
        raise UsageError(f"{flag} {path} names a file, but {len(files)} images need a folder for their PNGs")
    path.mkdir(parents=True, exist_ok=True)
    return [path / f"{Path(upload.name).stem}-{suffix}.png" for upload in files]


def _read(path: str) -> Upload:
    try:
        return uploads([path])[0]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _model_line(answer: ClassifyResponse | DetectResponse | SegmentResponse | ExplainResponse) -> str:
    return f"{answer.model.name}:{answer.model.version}"


def _box(box: Any) -> str:
    return f"{box.x_min:.0f}, {box.y_min:.0f}, {box.x_max:.0f}, {box.y_max:.0f}"


def _table(header: list[str], rows: list[list[str]], title: str | None = None) -> None:
    if title:
        print(f"model {title}")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _say_retry(error: VisionError, wait: float) -> None:
    print(f"vision: {error.code}, retrying in {wait:.1f} s", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="vision",
        description="Classify, detect, segment and explain images with a vision-service.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _global_options(root, with_defaults=True)
    # The same options after the command too: there they have no defaults, so the root's values stand.
    anywhere = argparse.ArgumentParser(add_help=False)
    _global_options(anywhere, with_defaults=False)
    commands = root.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser("classify", parents=[anywhere], help="top classes of each image")
    _files_and_options(run, ClassifyOptions)
    run.set_defaults(command=classify)

    run = commands.add_parser("detect", parents=[anywhere], help="objects in each image: class, score, box")
    _files_and_options(run, DetectOptions)
    run.add_argument(
        "--draw", type=Path, metavar="PATH", help="write the image with its boxes (a folder for several)"
    )
    run.set_defaults(command=detect)

    pictures = {
        "segment": (segment, SegmentOptions, "each image's pet / background / border trimap as a PNG"),
        "explain": (explain, ExplainOptions, "where a classifier saw each image's class: a heat map PNG"),
    }
    for name, (command, options, summary) in pictures.items():
        run = commands.add_parser(name, parents=[anywhere], help=summary)
        _files_and_options(run, options)
        run.add_argument(
            "-o", "--output", type=Path, required=True, metavar="PATH", help="PNG (a folder for several)"
        )
        run.set_defaults(command=command)

    commands.add_parser("models", parents=[anywhere], help="the loaded models").set_defaults(command=models)
    run = commands.add_parser(
        "monitor", parents=[anywhere], help="drift: a model's recent traffic against its held-out images"
    )
    run.add_argument("name", help="the model")
    run.add_argument("--version", type=int, help="its version (default: the highest)")
    run.set_defaults(command=monitor)
    commands.add_parser(
        "health", parents=[anywhere], help="readiness; exit status 6 when not ready"
    ).set_defaults(command=health)
    return root


def _global_options(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """The options every command takes, before or after its name; without defaults after it."""

    def default(value: object) -> object:
        return value if with_defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url", default=default(os.environ.get("VISION_URL", DEFAULT_URL)), help="service URL (VISION_URL)"
    )
    parser.add_argument(
        "--api-key", default=default(os.environ.get("VISION_API_KEY")), help="API key (VISION_API_KEY)"
    )
    parser.add_argument(
        "--timeout", type=_positive, default=default(DEFAULT_TIMEOUT_SECONDS), help="seconds per request"
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the service's JSON answer"
    )


def _version() -> str:
    try:
        return importlib.metadata.version("vision-service-client")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _files_and_options(command: argparse.ArgumentParser, options: type[ModelChoice]) -> None:
    """The image files, and a flag per field of the task's options (vision_client.api.options) with its type,
    choices, description and default from there. A flag left out is not sent: the service's default holds."""
    command.add_argument("files", nargs="+", metavar="FILE", help="image files")
    for name, field in options.model_fields.items():
        if name in EVERY_FILE:
            continue
        kind = _without_none(field.annotation)
        choices = get_args(kind) if get_origin(kind) is Literal else None
        default = "" if field.default is None else f" (default {field.default})"
        command.add_argument(
            f"--{(field.alias or name).replace('_', '-')}",
            dest=name,
            type=str if choices else kind,
            choices=choices,
            help=f"{field.description}{default}",
        )


def _without_none(annotation: Any) -> Any:
    """`int` of `int | None`; any other annotation as it is."""
    if get_origin(annotation) in (Union, UnionType):
        return next(arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


def _chosen(options: argparse.Namespace, task_options: type[ModelChoice]) -> dict[str, Any]:
    """The task options given on the command line."""
    given = {name: getattr(options, name) for name in task_options.model_fields if name not in EVERY_FILE}
    return {**{name: value for name, value in given.items() if value is not None}, **EVERY_FILE}


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value
