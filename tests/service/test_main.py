"""`python -m service` refuses settings it cannot honour before it serves: exit 1, one line naming them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


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
