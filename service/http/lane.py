"""The task routes' lane: a POST to one of them goes through our middleware straight to its handler.

Past FastAPI's own layers (its telemetry and body-limit wrappers, the router, the exit stacks) an inference
request costs the event loop about a quarter less. The lane is built from the same parts as FastAPI's
stack: Starlette's error middleware with the app's 500 handler, the app's middleware as added, Starlette's
exception middleware with the app's handlers, then the route's own handler; so the answers, errors
included, are FastAPI's. Every other request, other methods on those paths too, goes to FastAPI.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute, get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.routes.dependencies import FastRoute


class LaneApp(FastAPI):
    """FastAPI, and a lane for the routes given to `serve_in_lane`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lane_routes: dict[tuple[str, str], FastRoute] = {}
        self._lane: ASGIApp | None = None

    def serve_in_lane(self, routes: Iterable[BaseRoute]) -> None:
        """Take these routes' requests past FastAPI's layers: the `FastRoute`s, which need none of them."""
        for route in routes:
            if isinstance(route, FastRoute):
                self._lane_routes.update({(method, route.path): route for method in route.methods})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self._lane_routes.get((scope["method"], get_route_path(scope)))
            if scope["type"] == "http"
            else None
        )
        if route is None:
            await super().__call__(scope, receive, send)
            return
        if self._lane is None:
            self._lane = self._build_lane()
        scope["app"] = self
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        await self._lane(scope, receive, send)

    def _build_lane(self) -> ASGIApp:
        error_handler = None
        handlers = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        app: ASGIApp = ExceptionMiddleware(_respond, handlers=handlers, debug=self.debug)
        for middleware, args, kwargs in reversed(self.user_middleware):
            app = middleware(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)


async def _respond(scope: Scope, receive: Receive, send: Send) -> None:
    response = await scope["route"].handler(Request(scope, receive, send))
    await response(scope, receive, send)
