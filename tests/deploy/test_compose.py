"""docker-compose.yml validates with `docker-compose config`, alone and with every profile."""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy_checks import REPO_ROOT, require_tool, run_check


def test_compose_file_and_every_profile_validate() -> None:
    require_tool("docker-compose")
    result = run_check("compose_config.py")
    assert result.returncode == 0, result.stderr
    for profile in ("(none)", "gpu", "scale", "monitoring"):
        assert f"profile {profile}: valid" in result.stdout


def test_a_setting_the_service_does_not_know_fails(tmp_path: Path) -> None:
    require_tool("docker-compose")
    for name in ("docker-compose.yml", ".env.example"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy")
    with (tmp_path / ".env.example").open("a", encoding="utf-8") as env_file:
        env_file.write("VISION_MAX_UPLOAD_MEGABYTES=5\n")
    result = run_check("compose_config.py", "--compose-file", str(tmp_path / "docker-compose.yml"))
    assert result.returncode == 1
    assert "VISION_MAX_UPLOAD_MEGABYTES" in result.stderr


def test_an_invalid_compose_file_fails(tmp_path: Path) -> None:
    require_tool("docker-compose")
    shutil.copy(REPO_ROOT / ".env.example", tmp_path / ".env.example")
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy")
    text = (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    (tmp_path / "docker-compose.yml").write_text(text.replace("restart: unless-stopped", "restart: 3", 1))
    result = run_check("compose_config.py", "--compose-file", str(tmp_path / "docker-compose.yml"))
    assert result.returncode == 1
    assert "FAILED" in result.stderr
