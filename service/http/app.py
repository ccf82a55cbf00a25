"""The app: the gate, the engine behind the task routes, model routes, health and `/v2`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.core.budget import Budget
from service.core.engine import Engine
from service.http import oip
from service.http.errors import install_error_handlers
from service.http.gate import GatedApp
from service.http.lifecycle import Lifecycle
from service.http.limits import RequestBounds
from service.http.routes import docs, health, models, playground, repository, tasks, v2
from service.keys import ApiKeys
from service.observability.logs import configure_logging
from service.settings import Settings

DESCRIPTION = """
Classify, detect and segment images with self-describing ONNX models.

Send images as `multipart/form-data` (field `image`, repeat it for a batch) or as a raw body with an image
`Content-Type`. Every error is JSON: `{"error": {"code": ..., "message": ..., "detail": ...}}`.
"""
# Bodies documented through `openapi_extra` rather than a parameter, so they join the components by hand.
_EXTRA_SCHEMAS = (oip.InferRequest, oip.RepositoryIndexRequest, oip.ModelControlRequest)


def create_app(settings: Settings | None = None, *, serve_when_loaded: bool = False) -> GatedApp:
    """Build the app; the engine starts with it and loads models in the background (readiness tells), or,
    with `serve_when_loaded`, before the server accepts its first connection (a worker sharing a port)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    lifecycle = Lifecycle()
    app = GatedApp(
        bounds=RequestBounds.of(settings),
        # Bytes in connections' buffers: request bodies as they arrive, and answers until their client reads
        # them.
        bodies=Budget("request-body byte", settings.body_budget_bytes),
        lifecycle=lifecycle,
        docs_url=None,
        redoc_url=None,
        # A redirect to the path with or without its slash would build its Location from the Host header.
        redirect_slashes=False,
        title="vision-service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.api_keys = ApiKeys.from_settings(settings)
    app.state.serve_when_loaded = serve_when_loaded
    # Built now, loaded once the app starts: until then every call is answered "not ready".
    app.state.engine = Engine(settings.engine_config())
    install_error_handlers(app)
    routers = (
        tasks.router,
        models.router,
        health.router,
        v2.router,
        v2.protected,
        repository.router,
        docs.router,
        playground.router,
    )
    for router in routers:
        app.include_router(router)
    docs.mount_bundles(app)
    app.answer_in_gate(tasks.router.routes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# Requests allocate many short-lived objects: a young-generation collection every 10,000 allocations
# instead of 700, over a heap whose start-up objects are frozen out of every scan, saves the event loop
# about 5 % of its CPU per request on /classify.
GC_THRESHOLDS = (10_000, 50, 100)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine: Engine = app.state.engine
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    loading = asyncio.create_task(engine.load())
    try:
        if app.state.serve_when_loaded:
            # Workers share one listening socket: one still loading must not take a ready one's connections.
            await loading
        yield
    finally:
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        await engine.close()


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in _EXTRA_SCHEMAS:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        _drop_unsent_validation_errors(document)
        _restore_null_details(document)
        app.openapi_schema = document
    return app.openapi_schema


def _drop_unsent_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI declares its own 422 body wherever a route has parameters, but invalid parameters answer
    `ErrorResponse` (declared where they can) and 400 under `/v2`: clients would parse the wrong body."""
    unsent = "#/components/schemas/HTTPValidationError"
    for operations in document["paths"].values():
        for operation in operations.values():
            declared = operation.get("responses", {}).get("422", {})
            if (
                declared.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
                == unsent
            ):
                del operation["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        document["components"]["schemas"].pop(name, None)


def _restore_null_details(document: dict[str, Any]) -> None:
    """FastAPI drops every null from the document, and so `"detail": null` from the error examples, which the
    server always sends."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                examples = response.get("content", {}).get("application/json", {}).get("examples", {})
                for example in examples.values():
                    if isinstance(example["value"].get("error"), dict):
                        example["value"]["error"].setdefault("detail", None)
