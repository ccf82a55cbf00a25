"""The Python client of vision-service: sync and async, typed answers, retries on 503, errors with their code.

It needs only httpx and pydantic (`pip install ./client`; the `[full]` extra adds Pillow for PIL and numpy
inputs), so an application that calls the service installs no onnxruntime:

    from vision_client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as vision:
        answer = vision.classify("cat.jpg", top_k=3)
        print(answer.results[0].predictions[0].label)
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

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
    ExplainResponse,
    FailedImage,
    Health,
    ModelInfo,
    ModelsResponse,
    MonitorResponse,
    SegmentResponse,
)

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    ImageInput: TypeAlias = str | os.PathLike[str] | bytes | Image.Image | np.ndarray
    # One image, or a list or tuple of them: a batch.
    Images: TypeAlias = ImageInput | Sequence[ImageInput]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_RETRIES = 3
# What one request carries by default: the service's own default `VISION_MAX_IMAGES`.
DEFAULT_BATCH = 16
_MAX_BACKOFF_SECONDS = 30.0
# Modes Pillow writes as PNG unchanged; others (CMYK, YCbCr, HSV, ...) travel as RGB.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}

Batched = TypeVar("Batched", ClassifyResponse, DetectResponse, SegmentResponse, ExplainResponse)
RetryHook = Callable[["VisionError", float], None]


class VisionError(Exception):
    """An answer that is not a success, or no answer at all; `code` is the service's stable error code."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        detail: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Overloaded, loading or shutting down (503), or the server could not be reached: the request was
        not worked on. A time-out is not retried: the work may still be running."""
        return self.status == 503 or self.code == "unreachable"

    @classmethod
    def of(cls, response: httpx.Response) -> VisionError:
        retry_after = _seconds(response.headers.get("Retry-After"))
        try:
            error = response.json()["error"]
            return cls(
                response.status_code, error["code"], error["message"], error.get("detail"), retry_after
            )
        except (ValueError, KeyError, TypeError):
            # Not our envelope: a proxy's page, say.
            text = response.text.strip()[:200] or response.reason_phrase
            return cls(response.status_code, f"http_{response.status_code}", text, retry_after=retry_after)

    @classmethod
    def of_transport(cls, url: str, exc: httpx.TransportError) -> VisionError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return cls(None, "timeout", f"{url} did not answer in time ({reason})")
        return cls(None, "unreachable", f"cannot reach {url}: {reason}")


@dataclass(frozen=True)
class Upload:
    """One image as it travels: a file name for the server's logs, its bytes and their Content-Type."""

    name: str
    data: bytes
    content_type: str = "application/octet-stream"

    @classmethod
    def of(cls, image: ImageInput, index: int = 0) -> Upload:
        """A path, raw bytes, a PIL image or a uint8 numpy array (H x W, or H x W x 3 or 4)."""
        if isinstance(image, bytes | bytearray | memoryview):
            return cls(f"image-{index}", bytes(image))
        if isinstance(image, str | os.PathLike):
            path = Path(image)
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return cls(path.name, path.read_bytes(), content_type)
        if hasattr(image, "__array_interface__") and not hasattr(image, "save"):
            image = _array_as_image(image)
        if hasattr(image, "save"):
            buffer = io.BytesIO()
            png_ready = image if image.mode in _PNG_MODES else image.convert("RGB")
            png_ready.save(buffer, format="PNG")
            return cls(f"image-{index}.png", buffer.getvalue(), "image/png")
        raise TypeError(
            f"an image is a path, bytes, a PIL image or a numpy array, not {type(image).__name__}"
        )


def _array_as_image(array: np.ndarray) -> Image.Image:
    try:
        from PIL import Image
    except ImportError:
        raise TypeError("a numpy image needs Pillow: pip install 'vision-service-client[full]'") from None

    if (
        str(array.dtype) != "uint8"
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] not in (3, 4))
    ):
        raise TypeError(
            f"a numpy image is uint8, H x W or H x W x 3 or 4, not {array.dtype} {list(array.shape)}"
        )
    return Image.fromarray(array)


def uploads(images: Images | Sequence[Upload]) -> list[Upload]:
    """One upload per image; a list or tuple is a batch, anything else one image."""
    batch = images if isinstance(images, list | tuple) else [images]
    if not batch:
        raise ValueError("no image to send")
    return [
        image if isinstance(image, Upload) else Upload.of(image, index) for index, image in enumerate(batch)
    ]


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API and the model its answer parses into (None: the raw bytes)."""

    method: str
    path: str
    answer: type[BaseModel] | None
    params: dict[str, Any] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)
    # Readiness answers its body with 503 too: that is an answer, not an error.
    ok_statuses: tuple[int, ...] = (200,)
    # Where its files start in the caller's batch, which may take several requests: an image's error then
    # gives its index in the batch, not in its request.
    first: int = 0

    def request_arguments(self) -> dict[str, Any]:
        params = {key: value for key, value in self.params.items() if value is not None}
        files = [("image", (upload.name, upload.data, upload.content_type)) for upload in self.files]
        return {"params": params, "files": files or None}

    def parse(self, response: httpx.Response) -> Any:
        if response.status_code not in self.ok_statuses:
            error = VisionError.of(response)
            error.detail = _counted_from(self.first, error.detail)
            raise error
        if self.answer is None:
            return response.content
        answer = self.answer.model_validate_json(response.content)
        return counted_from(self.first, answer) if hasattr(answer, "results") else answer


def counted_from(first: int, answer: Batched) -> Batched:
    """A batch answer whose failed images give their index counted from `first`, where its request's images
    start in the caller's batch."""
    if not first:
        return answer
    return answer.model_copy(update={"results": [_counted_result(first, r) for r in answer.results]})


def _counted_result(first: int, result: Any) -> Any:
    if not isinstance(result, FailedImage):
        return result
    error = result.error.model_copy(update={"detail": _counted_from(first, result.error.detail)})
    return result.model_copy(update={"error": error})


def _counted_from(first: int, detail: Any) -> Any:
    """An image error's detail with its index counted from `first`."""
    if isinstance(detail, dict) and isinstance(detail.get("index"), int):
        return {**detail, "index": detail["index"] + first}
    return detail


def chunks(files: list[Upload], size: int) -> list[list[Upload]]:
    """`files` in requests of at most `size`, in order."""
    return [files[start : start + size] for start in range(0, len(files), size)]


def query(options: type[ModelChoice], given: Mapping[str, Any]) -> dict[str, Any]:
    """A task call's query string: the options the caller gave, each named by the task's options
    (service/api/options.py) or by its name on the wire (`class_` or `class`). The service checks the
    values and applies its defaults to the rest."""
    wire = {name: field.alias or name for name, field in options.model_fields.items()}
    wire |= {alias: alias for alias in list(wire.values())}
    unknown = sorted(set(given) - set(wire))
    if unknown:
        known = ", ".join(options.model_fields)
        raise TypeError(f"not an option of {options.__name__}: {', '.join(unknown)} (it has {known})")
    return {wire[name]: value for name, value in given.items()}


def joined(answers: list[Batched]) -> Batched:
    """One answer of several requests of one batch: their results in order."""
    first = answers[0]
    if any(answer.model != first.model for answer in answers):
        raise VisionError(None, "model_changed", "the model was reloaded while this batch was being sent")
    return first.model_copy(update={"results": [result for answer in answers for result in answer.results]})


class _Api:
    """What the sync and async clients share: settings, and the request behind each method."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.5,
        batch_size: int = DEFAULT_BATCH,
        on_retry: RetryHook | None = None,
    ) -> None:
        if retries < 0 or batch_size < 1:
            raise ValueError("retries must be at least 0 and batch_size at least 1")
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        self.on_retry = on_retry
        self._client_options: dict[str, Any] = {
            "base_url": self.url,
            "timeout": httpx.Timeout(timeout),
            "headers": {"X-API-Key": api_key} if api_key else {},
        }

    def wait_or_raise(self, error: VisionError, attempt: int) -> float:
        """Seconds to wait before trying again after `error`: its Retry-After, else an exponential backoff
        with jitter. Raises `error` when it is not worth retrying or the retries are spent."""
        if not error.retryable or attempt >= self.retries:
            raise error
        backoff = min(self.backoff * 2**attempt, _MAX_BACKOFF_SECONDS) * random.uniform(0.5, 1.0)
        wait = error.retry_after if error.retry_after is not None else backoff
        if self.on_retry:
            self.on_retry(error, wait)
        return wait

    def classify_calls(self, images: Images, options: Mapping[str, Any]) -> list[Call]:
        return self._batched("/classify", ClassifyResponse, images, query(ClassifyOptions, options))

    def detect_calls(self, images: Images, options: Mapping[str, Any]) -> list[Call]:
        return self._batched("/detect", DetectResponse, images, query(DetectOptions, options))

    def segment_call(self, image: ImageInput, options: Mapping[str, Any]) -> Call:
        files = uploads(image)
        if len(files) > 1:
            raise ValueError("segment answers one image's PNG: send a batch with segment_json")
        return Call("POST", "/segment", None, query(SegmentOptions, options), files)

    def segment_json_calls(self, images: Images, options: Mapping[str, Any]) -> list[Call]:
        return self._batched("/segment/json", SegmentResponse, images, query(SegmentOptions, options))

    def explain_call(self, image: ImageInput, options: Mapping[str, Any]) -> Call:
        files = uploads(image)
        if len(files) > 1:
            raise ValueError("explain answers one image's PNG: send a batch with explain_json")
        return Call("POST", "/explain", None, query(ExplainOptions, options), files)

    def explain_json_calls(self, images: Images, options: Mapping[str, Any]) -> list[Call]:
        return self._batched("/explain/json", ExplainResponse, images, query(ExplainOptions, options))

    def _batched(
        self, path: str, answer: type[BaseModel], images: Images, params: dict[str, Any]
    ) -> list[Call]:
        return [
            Call("POST", path, answer, params, chunk, first=number * self.batch_size)
            for number, chunk in enumerate(chunks(uploads(images), self.batch_size))
        ]

    @staticmethod
    def models_call() -> Call:
        return Call("GET", "/models", ModelsResponse)

    @staticmethod
    def model_call(name: str) -> Call:
        return Call("GET", f"/models/{quote(name, safe='')}", ModelInfo)

    @staticmethod
    def monitor_call(name: str, version: int | None) -> Call:
        return Call("GET", f"/models/{quote(name, safe='')}/monitor", MonitorResponse, {"version": version})

    @staticmethod
    def health_call(path: str) -> Call:
        return Call("GET", path, Health, ok_statuses=(200, 503))


class Client(_Api):
    """A blocking client: `with Client(url) as vision: vision.classify(...)`."""

    def __init__(self, url: str = DEFAULT_URL, **options: Any) -> None:
        super().__init__(url, **options)
        self._http = httpx.Client(**self._client_options)

    def classify(self, images: Images, **options: Any) -> ClassifyResponse:
        """Top-k classes of each image; `options` are `ClassifyOptions`' (top_k, model, version, partial). A
        list of images is sent `batch_size` at a time, answered in order. With `partial=True` an image that
        fails is a FailedImage in its place (its detail's index counts from the list's start), else it raises
        VisionError naming it."""
        return joined([self._send(call) for call in self.classify_calls(images, options)])

    def detect(self, images: Images, **options: Any) -> DetectResponse:
        """Objects in each image: class, score, predicted IoU and box in the image's pixels; `options` are
        `DetectOptions`' (score_threshold, iou_threshold, max_detections, model, version, partial)."""
        return joined([self._send(call) for call in self.detect_calls(images, options)])

    def segment(self, image: ImageInput, **options: Any) -> bytes:
        """One image's trimap as PNG bytes (1 pet, 2 background, 3 border; or `color`, `overlay`); `options`
        are `SegmentOptions`' (style, model, version)."""
        return self._send(self.segment_call(image, options))

    def segment_json(self, images: Images, **options: Any) -> SegmentResponse:
        """Per image: the fraction of each trimap class and the PNG, for batches (`SegmentOptions`)."""
        return joined([self._send(call) for call in self.segment_json_calls(images, options)])

    def explain(self, image: ImageInput, **options: Any) -> bytes:
        """One image with a classifier's heat map of its top class laid over it, as PNG bytes; `options` are
        `ExplainOptions`' (class_ picks another label, model, version)."""
        return self._send(self.explain_call(image, options))

    def explain_json(self, images: Images, **options: Any) -> ExplainResponse:
        """Per image: the class explained, its probability and its heat grid, 0..1 (`ExplainOptions`)."""
        return joined([self._send(call) for call in self.explain_json_calls(images, options)])

    def models(self) -> ModelsResponse:
        return self._send(self.models_call())

    def model(self, name: str) -> ModelInfo:
        return self._send(self.model_call(name))

    def monitor(self, name: str, version: int | None = None) -> MonitorResponse:
        """How a model version's recent traffic compares with its held-out images: each signal's PSI."""
        return self._send(self.monitor_call(name, version))

    def ready(self) -> Health:
        """Readiness, answered whether or not the service is ready (`status` tells)."""
        return self._send(self.health_call("/healthz/ready"))

    def live(self) -> Health:
        return self._send(self.health_call("/healthz/live"))

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                return call.parse(self._http.request(call.method, call.path, **call.request_arguments()))
            except httpx.TransportError as exc:
                error = VisionError.of_transport(self.url, exc)
            except VisionError as exc:
                error = exc
            time.sleep(self.wait_or_raise(error, attempt))
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Api):
    """The same client for asyncio: `async with AsyncClient(url) as vision: await vision.classify(...)`."""

    def __init__(self, url: str = DEFAULT_URL, **options: Any) -> None:
        super().__init__(url, **options)
        self._http = httpx.AsyncClient(**self._client_options)

    async def classify(self, images: Images, **options: Any) -> ClassifyResponse:
        return joined([await self._send(call) for call in self.classify_calls(images, options)])

    async def detect(self, images: Images, **options: Any) -> DetectResponse:
        return joined([await self._send(call) for call in self.detect_calls(images, options)])

    async def segment(self, image: ImageInput, **options: Any) -> bytes:
        return await self._send(self.segment_call(image, options))

    async def segment_json(self, images: Images, **options: Any) -> SegmentResponse:
        calls = self.segment_json_calls(images, options)
        return joined([await self._send(call) for call in calls])

    async def explain(self, image: ImageInput, **options: Any) -> bytes:
        return await self._send(self.explain_call(image, options))

    async def explain_json(self, images: Images, **options: Any) -> ExplainResponse:
        calls = self.explain_json_calls(images, options)
        return joined([await self._send(call) for call in calls])

    async def models(self) -> ModelsResponse:
        return await self._send(self.models_call())

    async def model(self, name: str) -> ModelInfo:
        return await self._send(self.model_call(name))

    async def monitor(self, name: str, version: int | None = None) -> MonitorResponse:
        return await self._send(self.monitor_call(name, version))

    async def ready(self) -> Health:
        return await self._send(self.health_call("/healthz/ready"))

    async def live(self) -> Health:
        return await self._send(self.health_call("/healthz/live"))

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                return call.parse(
                    await self._http.request(call.method, call.path, **call.request_arguments())
                )
            except httpx.TransportError as exc:
                error = VisionError.of_transport(self.url, exc)
            except VisionError as exc:
                error = exc
            await asyncio.sleep(self.wait_or_raise(error, attempt))
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
