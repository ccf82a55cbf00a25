"""`GET /docs` (Swagger UI) and `GET /redoc`, from the bundles of fastapi-offline, behind a Content Security
Policy that keeps the browser on this server: ReDoc's footer asks a CDN for its logo, Swagger UI an outside
validator for its badge, and neither may leave the operator's network."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC = "/static-offline-docs"
# 'unsafe-inline': both pages start their bundle from an inline script. blob: is ReDoc's search worker, and
# the images Swagger UI shows from "Try it out" answers (a /segment PNG), made in the page itself.
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'"
)

REDOC_BUNDLE = "redoc.standalone.js"
# The one address outside the server in ReDoc's bundle: its footer's logo. Swapped for the same mark drawn
# inline, so the page asks the CDN for nothing and logs no refusal of its policy.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
INLINE_LOGO = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%23777'/%3E%3C/svg%3E"
)

router = APIRouter(include_in_schema=False)


@cache
def _redoc_bundle() -> bytes:
    bundle = (resources.files("fastapi_offline") / "static" / REDOC_BUNDLE).read_text(encoding="utf-8")
    return bundle.replace(REDOC_LOGO, INLINE_LOGO).encode()


@router.api_route(f"{STATIC}/{REDOC_BUNDLE}", methods=["GET", "HEAD"])
async def redoc_bundle() -> Response:
    """ReDoc's bundle as fastapi-offline ships it, its footer logo drawn inline (declared before the mount of
    the other files, so this route answers for it)."""
    return Response(_redoc_bundle(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


def mount_bundles(app: FastAPI) -> None:
    """Swagger UI's and ReDoc's files, as the fastapi-offline package ships them, under `STATIC`."""
    bundles = resources.files("fastapi_offline") / "static"
    app.mount(STATIC, StaticFiles(directory=str(bundles)), name="static-offline-docs")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = POLICY
    return page


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = POLICY
    return page
