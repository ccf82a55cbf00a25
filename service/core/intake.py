"""Intake: uploads become model inputs within the per-image and per-request limits.

Decode threads, each lending a decode worker process, do the work; two budgets bound it: `decoding` counts
the images decoding or waiting for a thread, `pixels` the decoded pixels a batch keeps until it is answered.
One image goes from its decode thread straight to the model's batcher; a batch is opened, checked as a
whole, decoded, then queued.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from PIL import ImageFile

from service.core.batching import Finish, InferenceResult
from service.core.budget import Budget
from service.core.decoding import DecodeLimits, Decoders
from service.core.errors import ImageTooLargeError, TooManyImagesError
from service.core.imaging import ImageLimits, PreparedImage, open_image
from service.core.pools import call_from_thread, map_in_pool
from service.core.repository import LoadedModel
from service.observability import timing


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
    ) -> list[InferenceResult]:
        """Each upload decoded for `loaded`, run through its batcher and finished, in upload order."""
        if len(images) == 1:
            return [await self._one(loaded, images[0], finish, preview_side)]
        async with self._many(loaded, images, preview_side) as prepared:
            return await loaded.batcher.infer(
                [image.pixels for image in prepared], [finish(image) for image in prepared]
            )

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
        self, loaded: LoadedModel, images: Sequence[bytes], preview_side: int | None
    ) -> AsyncIterator[list[PreparedImage]]:
        """A batch's uploads decoded for `loaded` (in the worker pool) within the per-call limits, with their
        pixels held in the pixel budget and `loaded` kept from retiring until the block ends."""
        if len(images) > self.limits.max_images:
            raise TooManyImagesError(
                f"{len(images)} images in one call; the limit is {self.limits.max_images}"
            )
        with loaded.in_use():
            with timing.stage("decode"):
                pixels, decoded = await self._decode(loaded, images, preview_side)
            # Decoding holds at most one full-size image per decode thread; the budget bounds what calls keep
            # afterwards, such as a segmentation's full-size mask.
            async with self.pixels.hold(pixels):
                yield decoded

    async def _decode(
        self, loaded: LoadedModel, images: Sequence[bytes], preview_side: int | None
    ) -> tuple[int, list[PreparedImage]]:
        """The uploads' total pixels and their decoded inputs, within the per-image and per-request limits."""
        limits = self.limits.image
        given_up = threading.Event()

        def decode(data: bytes) -> PreparedImage:
            return self._decoders.decode(loaded.model.decode_job(data, limits, preview_side), given_up.is_set)

        # Opened (headers only) first, so the batch's total is refused before any decoding, and before it can
        # be shed: retrying a request that is too large would not help.
        opened = await map_in_pool(self._pool, lambda data: open_image(data, limits), images)
        pixels = self._request_pixels(opened)
        async with self.decoding.hold(len(opened)):
            try:
                return pixels, await map_in_pool(self._pool, decode, images)
            finally:
                given_up.set()  # a decode still running when the call ends is stopped

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


def _fail(future: asyncio.Future[InferenceResult], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
