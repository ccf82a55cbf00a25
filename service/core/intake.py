"""Intake: uploads become model inputs within the per-image and per-request limits.

Decode threads, each lending a decode worker process, do the work; two budgets bound it: `decoding` counts
the images decoding or waiting for a thread, `pixels` the decoded pixels a batch keeps until it is answered.
One image goes from its decode thread straight to the model's batcher; a batch is opened, checked as a
whole, decoded, then queued. An image that fails says which upload it is (its index and file name); in a
partial call it takes its place among the answers instead of failing the call.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from PIL import ImageFile

from service.core.batching import Finish, InferenceResult
from service.core.budget import Budget
from service.core.decoding import DecodeLimits, Decoders
from service.core.errors import ImageError, ImageTooLargeError, TooManyImagesError
from service.core.imaging import ImageLimits, PreparedImage, open_image
from service.core.pools import call_from_thread, map_in_pool
from service.core.repository import LoadedModel
from service.observability import timing

T = TypeVar("T")
# One upload's outcome: what became of it, or why it could not be answered.
Outcome = T | ImageError


@dataclass(frozen=True)
class RequestLimits:
    """What one call may ask for: images (or batch rows), bytes per image, pixels per image and in all."""

    max_images: int
    max_image_bytes: int
    max_pixels: int
    max_request_pixels: int

    @property
    def image(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_pixels)


class Intake:
    """Decodes a call's uploads for its model and queues them on the model's batcher, within the limits."""

    def __init__(
        self,
        limits: RequestLimits,
        *,
        threads: int,
        decode_limits: DecodeLimits,
        queue_size: int,
        pixel_budget: int,
    ) -> None:
        self.limits = limits
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        # One worker process per decode thread: a thread waits for its worker with the GIL released.
        self._decoders = Decoders(threads, decode_limits)
        # Images decoding or waiting for a decode thread (a single upload: until it is answered). Past this a
        # call is shed at once, as a full batch queue sheds it, so a burst cannot wait without bound behind a
        # decoder slower than the models.
        self.decoding = Budget("decoding", threads + queue_size, wait_seconds=0)
        # Decoded pixels of the calls in flight: what bounds the memory that uploads can make the engine use.
        self.pixels = Budget("pixel", pixel_budget)

    def start(self) -> None:
        """Start the decode workers; blocking, so call it from a worker thread."""
        self._decoders.start()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._decoders.close()

    async def run(
        self,
        loaded: LoadedModel,
        images: Sequence[bytes],
        finish: Callable[[PreparedImage], Finish],
        preview_side: int | None,
        *,
        names: Sequence[str | None] | None = None,
        partial: bool = False,
    ) -> list[Outcome[InferenceResult]]:
        """Each upload decoded for `loaded`, run through its batcher and finished, in upload order. An image
        that fails is an ImageError naming it: in its place when `partial`, else raised."""
        uploads = Uploads(images, names or [None] * len(images), partial)
        if len(images) == 1:
            try:
                return [await self._one(loaded, images[0], finish, preview_side)]
            except ImageError as error:
                return [uploads.failed(0, error)]
        async with self._many(loaded, uploads, preview_side) as prepared:
            good = [image for image in prepared if not isinstance(image, ImageError)]
            results = iter(
                await loaded.batcher.infer(
                    [image.pixels for image in good], [finish(image) for image in good]
                )
                if good
                else []
            )
            return [image if isinstance(image, ImageError) else next(results) for image in prepared]

    async def _one(
        self,
        loaded: LoadedModel,
        data: bytes,
        finish: Callable[[PreparedImage], Finish],
        preview_side: int | None,
    ) -> InferenceResult:
        """One upload opened, checked and decoded in a decode worker, for a decode thread that then queues it
        on the batcher."""
        # No pixel budget: once decoded it keeps the model's input and a bounded preview, and its full-size
        # pixels exist only in the decode worker, then (a segmentation's mask) in the run thread.
        # One image: its own pixel limit is the request's too.
        limits = ImageLimits(
            self.limits.max_image_bytes, min(self.limits.max_pixels, self.limits.max_request_pixels)
        )
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[InferenceResult] = loop.create_future()

        def decode_and_queue() -> None:
            try:
                with timing.stage("decode"):
                    prepared = self._decoders.decode(
                        loaded.model.decode_job(data, limits, preview_side), answered.done
                    )
                loaded.batcher.put(prepared.pixels, finish(prepared), answered)
            except Exception as exc:
                call_from_thread(loop, _fail, answered, exc)

        async with self.decoding.hold(1):
            with loaded.in_use():
                # The request's context goes along, so the decode time is the request's own.
                job = self._pool.submit(contextvars.copy_context().run, decode_and_queue)
                try:
                    return await answered
                finally:
                    job.cancel()  # never started: never runs
                    answered.cancel()  # queued: its run thread skips it

    @asynccontextmanager
    async def _many(
        self, loaded: LoadedModel, uploads: Uploads, preview_side: int | None
    ) -> AsyncIterator[list[Outcome[PreparedImage]]]:
        """A batch's uploads decoded for `loaded` (in the worker pool) within the per-call limits, with their
        pixels held in the pixel budget and `loaded` kept from retiring until the block ends."""
        if len(uploads.data) > self.limits.max_images:
            raise TooManyImagesError(
                f"{len(uploads.data)} images in one call; the limit is {self.limits.max_images}"
            )
        with loaded.in_use():
            with timing.stage("decode"):
                pixels, decoded = await self._decode(loaded, uploads, preview_side)
            # Decoding holds at most one full-size image per decode thread; the budget bounds what calls keep
            # afterwards, such as a segmentation's full-size mask.
            async with self.pixels.hold(pixels):
                yield decoded

    async def _decode(
        self, loaded: LoadedModel, uploads: Uploads, preview_side: int | None
    ) -> tuple[int, list[Outcome[PreparedImage]]]:
        """The uploads' total pixels and their decoded inputs, within the per-image and per-request limits."""
        limits = self.limits.image
        given_up = threading.Event()

        def decode(data: bytes) -> PreparedImage:
            return self._decoders.decode(loaded.model.decode_job(data, limits, preview_side), given_up.is_set)

        # Opened (headers only) first, so the batch's total is refused before any decoding, and before it can
        # be shed: retrying a request that is too large would not help.
        opened = uploads.settled(await map_in_pool(self._pool, _attempt(open_image, limits), uploads.data))
        pixels = self._request_pixels([image for image in opened if not isinstance(image, ImageError)])
        to_decode = [
            data
            for data, image in zip(uploads.data, opened, strict=True)
            if not isinstance(image, ImageError)
        ]
        async with self.decoding.hold(len(to_decode)):
            try:
                decoded = iter(await map_in_pool(self._pool, _attempt(decode), to_decode))
            finally:
                given_up.set()  # a decode still running when the call ends is stopped
        return pixels, uploads.settled(
            [image if isinstance(image, ImageError) else next(decoded) for image in opened]
        )

    def _request_pixels(self, opened: Sequence[ImageFile.ImageFile]) -> int:
        """The pixels the opened uploads hold together; ImageTooLarge over the per-request limit."""
        pixels = sum(image.width * image.height for image in opened)
        if pixels > self.limits.max_request_pixels:
            raise ImageTooLargeError(
                f"the {len(opened)} images hold {pixels} pixels, over the limit of "
                f"{self.limits.max_request_pixels} pixels per request",
                detail={"pixels": pixels, "limit": self.limits.max_request_pixels},
            )
        return pixels


@dataclass(frozen=True)
class Uploads:
    """A call's uploads, their file names where they had one, and whether a failed image fails the call."""

    data: Sequence[bytes]
    names: Sequence[str | None]
    partial: bool

    def failed(self, index: int, error: ImageError) -> ImageError:
        """`error` naming its upload first in its detail, by index and by file name where it had one: raised,
        or returned in a partial call to take the upload's place."""
        name = self.names[index]
        where = {"index": index} if name is None else {"index": index, "filename": name}
        error.detail = {**where, **(error.detail or {})}
        if not self.partial:
            raise error
        return error

    def settled(self, outcomes: Sequence[Outcome[T]]) -> list[Outcome[T]]:
        """Each outcome, with its failures named; the first raised unless the call is partial."""
        return [
            self.failed(index, outcome) if isinstance(outcome, ImageError) else outcome
            for index, outcome in enumerate(outcomes)
        ]


def _attempt(work: Callable[..., T], *arguments: object) -> Callable[[bytes], Outcome[T]]:
    """`work(data, *arguments)`, with an image's failure returned rather than raised, so that one bad upload
    does not stop its batch's other images from being opened or decoded."""

    def attempt(data: bytes) -> Outcome[T]:
        try:
            return work(data, *arguments)
        except ImageError as error:
            return error

    return attempt


def _fail(future: asyncio.Future[InferenceResult], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
