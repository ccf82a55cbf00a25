"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.routes.dependencies import State
from service.schemas import Health

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
async def ready(state: State) -> JSONResponse:
    """200 once every default model is loaded and warmed up; 503 with the reason until then."""
    health = readiness(state)
    status = 200 if health.status == "ok" else 503
    headers = {} if status == 200 else {"Retry-After": "1"}
    return JSONResponse(health.model_dump(mode="json"), status_code=status, headers=headers)


def readiness(state: State) -> Health:
    if state.load_error is not None:
        return Health(status="unavailable", reason=state.load_error)
    if state.registry is None:
        return Health(status="loading", reason="models are still loading")
    loaded = [model.key for model in state.registry.loaded()]
    reason = state.registry.not_ready_reason()
    if reason is not None:
        return Health(status="unavailable", reason=reason, models=loaded)
    return Health(status="ok", models=loaded)
