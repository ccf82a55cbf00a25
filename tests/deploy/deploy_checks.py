"""Helpers to run the deployment checks (deploy/checks/*.py) as an operator would: scripts, exit status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TEST_DEFAULTS

CHECKS = REPO_ROOT / "deploy" / "checks"
SKIP_VARIABLE = "VISION_SKIP_DEPLOY_CHECKS"


def require_tool(name: str) -> None:
    """A missing tool fails the test: CI installs it (make test-tools); only an explicit opt-out skips."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{SKIP_VARIABLE}=1")
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    assert found, f"{name} is not installed: run `make test-tools` (or set {SKIP_VARIABLE}=1 to skip)"


def run_check(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run deploy/checks/SCRIPT like an operator; its output is shown when a test fails."""
    result = subprocess.run(
        [sys.executable, str(CHECKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )
    print(result.stdout, result.stderr, sep="\n")
    return result


def bundled_models() -> bool:
    return any((REPO_ROOT / "models").glob("*/*/model.onnx"))


def backend_settings(test_models_dir: Path) -> list[str]:
    """`--env` arguments for service processes: the bundled models when there are some, else test models."""
    if bundled_models():
        return []
    defaults = json.dumps(TEST_DEFAULTS)
    return ["--env", f"VISION_MODELS_DIR={test_models_dir}", "--env", f"VISION_DEFAULT_MODELS={defaults}"]
