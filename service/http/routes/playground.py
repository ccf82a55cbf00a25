"""`GET /`: the playground, a page for people who would rather look than read. It sends images to the task
routes of this server and draws their answers; its three files ship inside the package, so the page asks
nothing of any other server, under the same Content Security Policy as `/docs`."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from service.http.routes.docs import POLICY

ASSETS = {"playground.js": "text/javascript", "playground.css": "text/css"}

router = APIRouter(include_in_schema=False)


@cache
def _file(name: str) -> bytes:
    return (resources.files("service.http") / "playground" / name).read_bytes()


@router.get("/")
async def playground() -> HTMLResponse:
    return HTMLResponse(_file("index.html"), headers={"Content-Security-Policy": POLICY})


@router.api_route("/playground/{name}", methods=["GET", "HEAD"])
async def asset(name: str) -> Response:
    """The page's script and style sheet, by name from a fixed list: no other path is read."""
    if name not in ASSETS:
        raise HTTPException(404)
    return Response(_file(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=3600"})
