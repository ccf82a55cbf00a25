"""The ASGI app: `uvicorn service.app:app` serves the model repository named by `VISION_MODELS_DIR`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from service import __version__, observability
from service.errors import install_error_handlers
from service.registry import BatchingConfig, ModelRegistry
from service.routes import health, inference, models, oip
from service.routes.dependencies import ServiceState
from service.runtime import batch_delay_seconds, plan_execution
from service.settings import Settings
from service.uploads import BodyLimitMiddleware

logger = logging.getLogger("vision.app")

DESCRIPTION = """
Classify, detect and segment images with self-describing ONNX models.

Send images as `multipart/form-data` (field `image`, repeat it for a batch) or as a raw body with an image
`Content-Type`. Every error is JSON: `{"error": {"code": ..., "message": ..., "detail": ...}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; models load in the background once it starts, and readiness says when they are done."""
    settings = settings or Settings()
    observability.configure_logging(settings.log_level, settings.log_format)
    app = FastAPIOffline(
        title="vision-service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.service = ServiceState(
        settings=settings,
        decode_pool=ThreadPoolExecutor(
            settings.decode_workers or settings.cores, thread_name_prefix="decode"
        ),
    )
    install_error_handlers(app)
    for router in (inference.router, models.router, health.router, oip.router, oip.protected):
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
    observability.install(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.service
    registry = _build_registry(state.settings)
    loading = asyncio.create_task(_load(state, registry))
    try:
        yield
    finally:
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        await registry.stop()
        registry.executor.shutdown(wait=False, cancel_futures=True)
        state.decode_pool.shutdown(wait=False, cancel_futures=True)


def _build_registry(settings: Settings) -> ModelRegistry:
    plan = plan_execution(
        settings.provider, cores=settings.cores, threads=settings.threads, workers=settings.inference_workers
    )
    delay = batch_delay_seconds(plan, settings.max_delay_ms)
    logger.info(
        "execution plan: providers %s, %d intra-op threads x %d concurrent runs, batches of up to %d "
        "waiting up to %.1f ms",
        ",".join(plan.providers),
        plan.intra_op_threads,
        plan.concurrent_runs,
        settings.max_batch,
        delay * 1000,
    )
    return ModelRegistry(
        root=settings.models_dir,
        plan=plan,
        executor=ThreadPoolExecutor(plan.concurrent_runs, thread_name_prefix="inference"),
        batching=BatchingConfig(settings.max_batch, delay, settings.queue_size),
        preferred_defaults=settings.default_models,
    )


async def _load(state: ServiceState, registry: ModelRegistry) -> None:
    try:
        await asyncio.to_thread(registry.load_all)
        if state.settings.warmup:
            await asyncio.to_thread(registry.warm_up)
    except Exception as exc:
        state.load_error = f"loading the model repository failed: {exc}"
        logger.exception("loading the model repository failed")
        return
    registry.start()
    state.registry = registry
    reason = registry.not_ready_reason()
    logger.info(
        "ready: %d model versions loaded%s", len(list(registry.loaded())), f" ({reason})" if reason else ""
    )


app = create_app()
