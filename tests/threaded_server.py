"""An ASGI app served by a real uvicorn in a thread of the test process, on a free loopback port; a bare app
behind the gate to serve."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from service.core.budget import Budget
from service.http.errors import install_error_handlers
from service.http.gate import GatedApp
from service.http.lifecycle import Lifecycle
from service.http.limits import RequestBounds
from service.keys import ApiKeys
from service.settings import Settings


def bind_loopback() -> socket.socket:
    for port in range(18100, 18200):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        return sock
    raise RuntimeError("no free loopback port in 18100-18199")


@contextlib.contextmanager
def serving(app: ASGIApp, *, lifespan: bool = False) -> Iterator[str]:
    """`app` served until the block ends, its lifespan run if asked; yields its base URL."""
    sock = bind_loopback()
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on" if lifespan else "off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def gated_app() -> GatedApp:
    """A bare app behind the gate, with the settings' default bounds and the API open."""
    settings = Settings()
    app = GatedApp(
        bounds=RequestBounds.of(settings),
        bodies=Budget("request-body byte", settings.body_budget_bytes),
        lifecycle=Lifecycle(),
    )
    app.state.settings = settings
    app.state.api_keys = ApiKeys([], None)
    install_error_handlers(app)
    return app
