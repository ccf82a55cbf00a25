"""Check the monitoring an operator deploys with the service, with the tools that will run it:

- `promtool check rules` and `promtool test rules` on the alert rules and their unit tests;
- `promtool check config` on deploy/prometheus.yml, its rule files mapped to the repository's;
- the Grafana dashboard and every alert rule ask only for metrics the service exports (a renamed metric would
  leave a panel empty and an alert silent forever), over the datasource Grafana is provisioned with.

    python deploy/checks/monitoring.py [--dashboard FILE] [--rules FILE --rule-tests FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from prometheus_client import REGISTRY  # noqa: E402

import service.observability.metrics  # noqa: E402, F401  (registers the service's metrics)

DEPLOY = REPO / "deploy"
GRAFANA = DEPLOY / "grafana"
# What Prometheus adds itself: a target's scrape health.
PROMETHEUS_OWN = {"up"}
_METRIC = re.compile(r"\b(vision_[a-z_]+|up)\b(?!\s*\()")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


class MonitoringError(RuntimeError):
    """What is wrong, in one line."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise MonitoringError(message)


def exported_metrics() -> set[str]:
    """The series names the service's /metrics can hold."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("vision_"):
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names | PROMETHEUS_OWN


def metrics_in(expression: str) -> set[str]:
    return set(_METRIC.findall(expression))


def promtool(*arguments: str) -> str:
    found = shutil.which("promtool")
    require(found is not None, "promtool is not installed (Debian's prometheus package)")
    done = subprocess.run([found, *arguments], capture_output=True, text=True, check=False)
    require(done.returncode == 0, f"promtool {' '.join(arguments)}:\n{done.stdout}{done.stderr}")
    return done.stdout


def check_rules(rules: Path, tests: Path) -> list[str]:
    promtool("check", "rules", str(rules))
    with tempfile.TemporaryDirectory() as scratch:
        # The tests name their rule file relative to themselves: test exactly `rules`, wherever it is.
        copied_tests = Path(scratch) / "alerts.test.yml"
        document = yaml.safe_load(tests.read_text(encoding="utf-8"))
        document["rule_files"] = [str(rules.resolve())]
        copied_tests.write_text(yaml.safe_dump(document), encoding="utf-8")
        promtool("test", "rules", str(copied_tests))
    exported = exported_metrics()
    alerts = []
    for group in yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            unknown = metrics_in(rule["expr"]) - exported
            require(
                not unknown,
                f"alert {rule['alert']} asks for {sorted(unknown)}, which the service does not export",
            )
            alerts.append(rule["alert"])
    return alerts


def check_prometheus_config(config: Path, rules: Path) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    require(
        document.get("rule_files") == ["/etc/prometheus/alerts.yml"], f"{config.name} loads no alert rules"
    )
    document["rule_files"] = [str(rules.resolve())]
    with tempfile.TemporaryDirectory() as scratch:
        mapped = Path(scratch) / "prometheus.yml"
        mapped.write_text(yaml.safe_dump(document), encoding="utf-8")
        promtool("check", "config", str(mapped))


def check_dashboard(dashboard: Path) -> int:
    """Every panel's queries use exported metrics over the provisioned datasource; returns the panel count."""
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    document = json.loads(dashboard.read_text(encoding="utf-8"))
    exported = exported_metrics()
    panels = [panel for panel in document["panels"] if panel["type"] != "row"]
    require(panels, f"{dashboard.name} has no panels")
    for panel in panels:
        require(
            panel["datasource"]["uid"] == uid,
            f"panel {panel['title']!r} reads datasource {panel['datasource']}",
        )
        require(panel.get("targets"), f"panel {panel['title']!r} has no query")
        for target in panel["targets"]:
            used = metrics_in(target["expr"])
            require(used, f"panel {panel['title']!r}: {target['expr']!r} asks for no metric")
            unknown = used - exported
            require(
                not unknown,
                f"panel {panel['title']!r} asks for {sorted(unknown)}, which the service does not export",
            )
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "vision-service.yml").read_text())
    require(
        providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards",
        "the dashboard provider does not read /var/lib/grafana/dashboards, where compose mounts them",
    )
    return len(panels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dashboard", type=Path, default=GRAFANA / "dashboards" / "vision-service.json")
    parser.add_argument("--rules", type=Path, default=DEPLOY / "alerts.yml")
    parser.add_argument("--rule-tests", type=Path, default=DEPLOY / "alerts.test.yml")
    args = parser.parse_args(argv)
    try:
        alerts = check_rules(args.rules, args.rule_tests)
        check_prometheus_config(DEPLOY / "prometheus.yml", args.rules)
        panels = check_dashboard(args.dashboard)
    except MonitoringError as failed:
        print(f"monitoring: {failed}", file=sys.stderr)
        return 1
    print(f"alerts: {len(alerts)} rules ({', '.join(alerts)}), their unit tests pass")
    print(f"dashboard: {panels} panels, every query on metrics the service exports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
