"""The micro-batcher: requests share runs, answers come back in order and unchanged, the queue is bounded."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.core.batching import InferenceResult, MicroBatcher
from service.core.errors import NotReadyError, OverloadedError
from service.core.runtime import open_session, plan_execution, run_batch


def colour_session(test_models_dir: Path) -> ort.InferenceSession:
    plan = plan_execution("cpu", cores=2, threads=1, workers=1)
    return open_session(test_models_dir / "colours" / "1" / "model.onnx", plan)


def random_images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 255, (8, 8, 3)).astype(np.float32) for _ in range(count)]


def test_batched_answers_equal_unbatched(test_models_dir: Path) -> None:
    session = colour_session(test_models_dir)
    images = random_images(24)
    sizes: list[int] = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return run_batch(session, "image", {"probabilities": "probs"}, batch)

    async def main() -> list[np.ndarray]:
        slots = threading.BoundedSemaphore(2)
        batcher = MicroBatcher(
            "colours:1",
            run,
            slots,
            max_batch=8,
            max_delay=0.05,
            queue_size=64,
            concurrency=1,
            on_batch=sizes.append,
        )
        batcher.start()
        # Twelve concurrent requests of two images each.
        answers = await asyncio.gather(*(batcher.infer(images[i : i + 2]) for i in range(0, 24, 2)))
        await batcher.stop()
        return [result.outputs["probabilities"] for pair in answers for result in pair]

    batched = asyncio.run(main())
    alone = [run(image[None])["probabilities"][0] for image in images]
    # Equal up to float32 summation order, which differs between batch sizes; the ranking is identical.
    np.testing.assert_allclose(np.stack(batched), np.stack(alone), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.argmax(batched, axis=1), np.argmax(alone, axis=1))
    assert max(sizes) > 1, "concurrent requests were never batched"
    assert max(sizes) <= 8
    assert sum(sizes) == 24


def test_full_queue_refuses_at_once_and_admits_all_or_none() -> None:
    started, release = threading.Event(), threading.Event()

    def slow_run(batch: np.ndarray) -> dict[str, np.ndarray]:
        started.set()
        release.wait(5)
        return {"out": batch.sum(axis=(1, 2, 3))}

    async def main() -> None:
        slots = threading.BoundedSemaphore(1)
        batcher = MicroBatcher(
            "slow:1", slow_run, slots, max_batch=1, max_delay=0, queue_size=3, concurrency=1
        )
        batcher.start()
        first = asyncio.create_task(batcher.infer(random_images(1)))
        assert await asyncio.to_thread(started.wait, 5)  # the run thread took it and blocks in slow_run
        queued = asyncio.create_task(batcher.infer(random_images(2)))
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        with pytest.raises(OverloadedError, match="slow:1 is overloaded") as refused:
            await batcher.infer(random_images(2))
        assert refused.value.retry_after == 1
        assert batcher.depth == 2  # nothing of the refused request was queued
        release.set()
        assert len(await first) == 1
        assert len(await queued) == 2
        await batcher.stop()

    asyncio.run(main())


def test_failed_run_fails_only_its_batch() -> None:
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        if (batch < 0).any():
            raise RuntimeError("bad batch")
        return {"out": batch.mean(axis=(1, 2, 3))}

    async def main() -> None:
        slots = threading.BoundedSemaphore(1)
        batcher = MicroBatcher("runs:1", run, slots, max_batch=4, max_delay=0, queue_size=8, concurrency=1)
        batcher.start()
        with pytest.raises(RuntimeError, match="bad batch"):
            await batcher.infer([np.full((2, 2, 1), -1, np.float32)])
        (result,) = await batcher.infer([np.full((2, 2, 1), 3, np.float32)])
        assert float(result.outputs["out"]) == 3.0
        await batcher.stop()

    asyncio.run(main())


def test_finish_runs_in_the_worker_thread_and_its_error_stays_its_own(test_models_dir: Path) -> None:
    session = colour_session(test_models_dir)
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return run_batch(session, "image", {"probabilities": "probs"}, batch)

    def best(outputs: dict[str, np.ndarray]) -> int:
        threads.append(threading.get_ident())
        return int(np.argmax(outputs["probabilities"]))

    def broken(outputs: dict[str, np.ndarray]) -> int:
        raise ValueError("post-processing failed")

    async def main() -> tuple[list[InferenceResult], BaseException | list[InferenceResult]]:
        slots = threading.BoundedSemaphore(1)
        batcher = MicroBatcher(
            "colours:1", run, slots, max_batch=8, max_delay=0.05, queue_size=64, concurrency=1
        )
        batcher.start()
        images = random_images(3)
        fine, failed = await asyncio.gather(
            batcher.infer(images[:2], [best, best]),
            batcher.infer(images[2:], [broken]),
            return_exceptions=True,
        )
        await batcher.stop()
        return fine, failed

    fine, failed = asyncio.run(main())
    expected = [int(np.argmax(run(image[None])["probabilities"][0])) for image in random_images(3)[:2]]
    assert [result.finished for result in fine] == expected
    assert all(result.finish_seconds > 0 for result in fine)
    assert len(threads) == 2
    assert loop_thread not in threads
    assert isinstance(failed, ValueError)


def test_a_stopped_batcher_refuses_work_instead_of_holding_it() -> None:
    async def main() -> None:
        batcher = MicroBatcher(
            "gone:1",
            lambda batch: {"out": batch},
            threading.BoundedSemaphore(1),
            max_batch=4,
            max_delay=0,
            queue_size=8,
            concurrency=1,
        )
        batcher.start()
        await batcher.stop()
        with pytest.raises(NotReadyError, match="gone:1 is stopping"):
            await batcher.infer(random_images(1))
        assert batcher.depth == 0

    asyncio.run(main())


def test_batchers_sharing_run_slots_never_run_more_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.02)  # long enough for the other runs to overlap if they could
        with lock:
            running[0] -= 1
        return {"out": batch.sum(axis=(1, 2, 3))}

    async def main() -> int:
        slots = threading.BoundedSemaphore(1)
        batchers = [
            MicroBatcher(name, run, slots, max_batch=1, max_delay=0, queue_size=8, concurrency=2)
            for name in ("a:1", "b:1")
        ]
        for batcher in batchers:
            batcher.start()
        answers = await asyncio.gather(*(batcher.infer(random_images(1)) for batcher in batchers * 4))
        for batcher in batchers:
            await batcher.stop()
        return len(answers)

    assert asyncio.run(main()) == 8
    assert most[0] == 1
