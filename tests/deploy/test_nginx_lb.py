"""nginx with deploy/nginx.conf in front of two service processes loses no request while one is killed."""

from __future__ import annotations

from pathlib import Path

from deploy_checks import backend_settings, require_tool, run_check


def test_no_request_fails_while_a_backend_is_killed_and_restarted(test_models_dir: Path) -> None:
    require_tool("nginx")
    result = run_check("nginx_lb.py", *backend_settings(test_models_dir))
    assert result.returncode == 0, result.stderr
    assert "300 requests, 0 failed" in result.stdout
    assert "413 payload_too_large" in result.stdout
    assert "restarted backend served" in result.stdout
