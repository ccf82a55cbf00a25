"""The image, reproduced from the Dockerfile without Docker, installs, starts, gets ready and classifies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_checks import REPO_ROOT, backend_settings, bundled_models, run_check


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory, test_models_dir: Path) -> Path:
    """The repository as Docker's build context; until models/ holds models, a copy with test models."""
    if bundled_models():
        return REPO_ROOT
    copy = tmp_path_factory.mktemp("context")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for relative in listed:
        source = REPO_ROOT / relative
        if source.is_file():
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / relative)
    shutil.copytree(test_models_dir, copy / "models", dirs_exist_ok=True)
    return copy


def settings(test_models_dir: Path) -> list[str]:
    """The image's VISION_MODELS_DIR is its baked-in models; only default model names may need telling.
    Stopping the checked server needs no drain (5 s by default)."""
    pairs = [*backend_settings(test_models_dir)[1::2], "VISION_DRAIN_SECONDS=0"]
    return [arg for pair in pairs if not pair.startswith("VISION_MODELS_DIR=") for arg in ("--env", pair)]


def test_image_installs_starts_and_classifies(context: Path, test_models_dir: Path) -> None:
    result = run_check("image_contents.py", "--context", str(context), *settings(test_models_dir))
    assert result.returncode == 0, result.stderr
    assert "[run] HEALTHCHECK command: exit 0" in result.stdout
    assert "[run] POST /classify: 200" in result.stdout


def test_a_file_the_image_lacks_fails(context: Path, test_models_dir: Path, tmp_path: Path) -> None:
    dockerignore = tmp_path / ".dockerignore"
    text = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8")
    dockerignore.write_text(text + "service/http/routes/health.py\n", encoding="utf-8")
    args = ["--context", str(context), "--dockerignore", str(dockerignore), *settings(test_models_dir)]
    result = run_check("image_contents.py", *args)
    assert result.returncode == 1
    assert "health" in result.stderr


def test_a_dependency_the_image_does_not_install_fails(context: Path, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "/opt/venv/bin/pip install . " in text
    dockerfile.write_text(
        text.replace("/opt/venv/bin/pip install . ", "/opt/venv/bin/pip install --no-deps . ")
    )
    result = run_check("image_contents.py", "--context", str(context), "--dockerfile", str(dockerfile))
    assert result.returncode == 1
    assert "uvicorn" in result.stderr
