"""The alert rules and the Grafana dashboard, judged by promtool and by what the service exports."""

from __future__ import annotations

import json
from pathlib import Path

from deploy_checks import REPO_ROOT, require_tool, run_check

DEPLOY = REPO_ROOT / "deploy"


def test_the_rules_fire_as_their_tests_say_and_every_panel_has_its_metrics() -> None:
    require_tool("promtool")
    result = run_check("monitoring.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("alerts: 5 rules (VisionModelDrift, VisionUnfamiliarImages, ")
    assert "dashboard: 13 panels, every query on metrics the service exports" in result.stdout


def test_a_panel_on_a_metric_the_service_does_not_export_is_refused(tmp_path: Path) -> None:
    require_tool("promtool")
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "vision-service.json").read_text())
    drift = next(panel for panel in dashboard["panels"] if panel["title"] == "Drift (PSI) per signal")
    drift["targets"][0]["expr"] = "max by (model) (vision_drift_index)"
    renamed = tmp_path / "dashboard.json"
    renamed.write_text(json.dumps(dashboard))
    result = run_check("monitoring.py", "--dashboard", str(renamed))
    assert result.returncode == 1
    assert "panel 'Drift (PSI) per signal' asks for ['vision_drift_index']" in result.stderr


def test_a_rule_that_no_longer_fires_when_its_test_says_fails_the_check(tmp_path: Path) -> None:
    require_tool("promtool")
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        (DEPLOY / "alerts.yml").read_text().replace("(vision_drift_psi) > 0.2", "(vision_drift_psi) > 0.5")
    )
    result = run_check("monitoring.py", "--rules", str(rules))
    assert result.returncode == 1
    assert "promtool test rules" in result.stderr
    assert "alertname: VisionModelDrift" in result.stderr
