"""Liveness and readiness for load balancers and Kubernetes probes, and Prometheus metrics for scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from service.api.schemas import Health
from service.core.engine import LOADING_RETRY_AFTER_SECONDS, Engine
from service.http.auth import key_accepted, require_operator_key
from service.http.routes.dependencies import EngineDep, engine_of
from service.observability import metrics

router = APIRouter(tags=["health"])


@router.get("/healthz/live", response_model=Health, summary="Liveness")
async def live() -> Health:
    """The process is up and its event loop answers."""
    return Health(status="ok")


@router.get(
    "/healthz/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready, with the reason."}},
    summary="Readiness",
)
async def ready(request: Request, engine: EngineDep) -> JSONResponse:
    """200 once every default model is loaded and warmed up; 503 with the reason until then, and from
    SIGTERM on (`draining`). With `VISION_PROTECT_METRICS`, the reason and the models need a key."""
    health = _readiness(request, engine)
    if request.app.state.settings.protect_metrics and not key_accepted(request):
        health = Health(status=health.status)
    status = 200 if health.status == "ok" else 503
    headers = {} if status == 200 else {"Retry-After": str(LOADING_RETRY_AFTER_SECONDS)}
    return JSONResponse(health.model_dump(mode="json"), status_code=status, headers=headers)


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_operator_key)])
async def prometheus_metrics(request: Request) -> Response:
    if hasattr(request.app.state, "engine"):  # every app but a bare one of the gate's tests
        _readiness(request, engine_of(request))
    body, media_type = metrics.exposition()
    return Response(body, media_type=media_type)


def _readiness(request: Request, engine: Engine) -> Health:
    """What /healthz/ready answers, also kept in `vision_ready` for the scrape."""
    health = Health.of(engine.readiness())
    if request.app.lifecycle.draining:
        health = Health(
            status="draining", reason="shutting down: send new work elsewhere", models=health.models
        )
    metrics.set_ready(health.status == "ok")
    return health
