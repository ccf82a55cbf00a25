"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.core.engine import LOADING_RETRY_AFTER_SECONDS
from service.http.routes.dependencies import EngineDep
from service.http.schemas import Health

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
async def ready(engine: EngineDep) -> JSONResponse:
    """200 once every default model is loaded and warmed up; 503 with the reason until then."""
    health = Health.of(engine.readiness())
    status = 200 if health.status == "ok" else 503
    headers = {} if status == 200 else {"Retry-After": str(LOADING_RETRY_AFTER_SECONDS)}
    return JSONResponse(health.model_dump(mode="json"), status_code=status, headers=headers)
