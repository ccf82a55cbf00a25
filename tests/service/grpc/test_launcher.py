"""The launcher and the gRPC port: a port it cannot bind ends the service with one line and status 1, as a
REST port it cannot bind does."""

from __future__ import annotations

import socket

from conftest import REPO_ROOT, ServerFactory


def test_a_grpc_port_in_use_ends_the_service_with_one_line(start_server: ServerFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_server(REPO_ROOT / "models", wait=False, grpc_port=port)
        assert server.process.wait(timeout=60) == 1
    logs = server.logs()
    assert f"gRPC cannot listen on 127.0.0.1:{port} (VISION_GRPC_PORT; 0 turns it off)" in logs
    assert "Traceback" not in logs
