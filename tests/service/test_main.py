"""`python -m service` refuses settings it cannot honour before it serves: exit 1, one line naming them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, LiveServer, ServerFactory
from polling import wait_for


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"VISION_ADMIN_KEY": "short"},
            "VISION_ADMIN_KEY: Value error, must be at least 16 characters: a short key can be guessed",
        ),
        (
            {"VISION_MAX_REQUEST_PIXELS": "1000"},
            "settings: Value error, VISION_MAX_PIXELS must not exceed VISION_MAX_REQUEST_PIXELS",
        ),
        (
            {
                "VISION_PIXEL_BUDGET": "1000000",
                "VISION_MAX_PIXELS": "1000",
                "VISION_MAX_REQUEST_PIXELS": "2000000",
            },
            "settings: Value error, VISION_MAX_REQUEST_PIXELS must not exceed VISION_PIXEL_BUDGET",
        ),
        (
            {"VISION_QUEUE_SIZE": "8"},
            "settings: Value error, VISION_MAX_IMAGES must not exceed VISION_QUEUE_SIZE",
        ),
        ({"VISION_BODY_IDLE_SECONDS": "0"}, "VISION_BODY_IDLE_SECONDS: Input should be greater than 0"),
    ],
)
def test_settings_that_cannot_hold_stop_the_start(settings: dict[str, str], line: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "service", "--port", "1"],
        env={**os.environ, **settings},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines() == [f"vision-service: configuration refused: {line}"]


def test_an_empty_admin_key_in_an_env_file_means_model_control_off() -> None:
    from service.settings import Settings

    assert Settings(_env_file=None, admin_key="  ").admin_key is None  # type: ignore[call-arg]


def logged_clients(server: LiveServer, request_id: str) -> list[str]:
    """The client address of each access-log line of `request_id`."""
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    return [line["client"] for line in lines if line.get("request_id") == request_id]


@pytest.mark.parametrize(("trusted", "logged"), [(None, "203.0.113.9"), ("10.0.0.0/8", "127.0.0.1")])
def test_a_forwarded_client_address_is_believed_only_from_the_named_proxies(
    start_server: ServerFactory, test_models_dir: Path, trusted: str | None, logged: str
) -> None:
    settings = {} if trusted is None else {"forwarded_allow_ips": trusted}
    server = start_server(test_models_dir, **settings)
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "forwarded-for-check"}
    assert server.client.get("/models", headers=headers).status_code == 200
    wait_for(lambda: logged_clients(server, "forwarded-for-check"))
    assert logged_clients(server, "forwarded-for-check") == [logged]
