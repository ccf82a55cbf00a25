"""Validate docker-compose.yml with `docker-compose config`, alone and with each profile; check its promises.

Beyond the schema and interpolation docker-compose checks, each profile must carry what the deployment
documents (healthcheck, restart policy, limits, the GPU reservation, nginx and Prometheus wiring), and every
variable in the env file must be a setting the service knows.

    python deploy/checks/compose_config.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from service.settings import Settings  # noqa: E402

Config = dict[str, Any]


class ComposeError(RuntimeError):
    """The compose file is invalid or does not deploy what it promises."""


def compose_config(compose: Path, profile: str | None) -> Config:
    command = ["docker-compose", "--project-directory", str(compose.parent), "-f", str(compose)]
    command += ["--profile", profile] if profile else []
    result = subprocess.run([*command, "config"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ComposeError(f"docker-compose config (profile {profile or 'none'}) failed:\n{result.stderr}")
    return yaml.safe_load(result.stdout)


def profiles_of(raw: Config) -> list[str]:
    return sorted(
        {profile for service in raw["services"].values() for profile in service.get("profiles", [])}
    )


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ComposeError(message)


def check_api(name: str, service: Config) -> None:
    require(bool(service.get("healthcheck", {}).get("test")), f"{name}: no healthcheck")
    require(
        "/healthz/ready" in " ".join(service["healthcheck"]["test"]), f"{name}: healthcheck is not readiness"
    )
    require(
        service.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name}: no restart policy"
    )
    limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
    require({"cpus", "memory"} <= set(limits), f"{name}: needs cpu and memory limits")


def check_profile(profile: str | None, config: Config, raw: Config) -> None:
    services = config["services"]
    if profile is None:
        check_api("api", services["api"])
        require("env_file" in raw["services"]["api"], "api: no env_file")
    elif profile == "gpu":
        gpu = services["api-gpu"]
        check_api("api-gpu", gpu)
        require(gpu["environment"].get("VISION_PROVIDER") == "cuda", "api-gpu: VISION_PROVIDER is not cuda")
        require(gpu["build"]["args"].get("VARIANT") == "cuda", "api-gpu: not built with VARIANT=cuda")
        devices = gpu["deploy"]["resources"].get("reservations", {}).get("devices", [])
        require(
            any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices),
            "api-gpu: no NVIDIA device reservation",
        )
    elif profile == "scale":
        check_api("api-replica", services["api-replica"])
        require(
            services["api-replica"]["deploy"].get("replicas", 1) >= 2, "api-replica: fewer than 2 replicas"
        )
        mounts = " ".join(str(volume) for volume in services["lb"].get("volumes", []))
        require("deploy/nginx.conf" in mounts, "lb: deploy/nginx.conf is not mounted")
        require("api-replica" in services["lb"].get("depends_on", {}), "lb: does not wait for the replicas")
    elif profile == "monitoring":
        mounts = " ".join(str(volume) for volume in services["prometheus"].get("volumes", []))
        require("deploy/prometheus.yml" in mounts, "prometheus: deploy/prometheus.yml is not mounted")
        require(
            "deploy/alerts.yml:/etc/prometheus/alerts.yml" in mounts,
            "prometheus: deploy/alerts.yml is not mounted",
        )
        grafana = " ".join(str(volume) for volume in services["grafana"].get("volumes", []))
        for mount in (
            "deploy/grafana/provisioning:/etc/grafana/provisioning",
            "deploy/grafana/dashboards:/var/lib/grafana/dashboards",
        ):
            require(mount in grafana, f"grafana: {mount} is not mounted")
        require(
            services["grafana"]["environment"].get("GF_AUTH_DISABLE_LOGIN_FORM") == "true",
            "grafana: its login form is on (the dashboards are read-only files, nobody needs to log in)",
        )


def check_prometheus_targets(prometheus: Path, raw: Config) -> None:
    """Every host Prometheus scrapes is a service of the compose file, on the API's port."""
    scrape = yaml.safe_load(prometheus.read_text(encoding="utf-8"))["scrape_configs"]
    hosts = [
        target for job in scrape for static in job.get("static_configs", []) for target in static["targets"]
    ]
    hosts += [
        f"{name}:{dns['port']}"
        for job in scrape
        for dns in job.get("dns_sd_configs", [])
        for name in dns["names"]
    ]
    for host in hosts:
        name, port = host.split(":")
        require(name in raw["services"], f"prometheus.yml scrapes {name}, which compose does not define")
        require(port == "8000", f"prometheus.yml scrapes {host}, not the API port 8000")


def check_env_file(env_file: Path) -> list[str]:
    """Every VISION_* name in the env file is a setting; a typo would be silently ignored by the service."""
    names = [
        line.split("=", 1)[0].strip()
        for line in env_file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    known = {f"VISION_{field.upper()}" for field in Settings.model_fields}
    unknown = sorted(set(names) - known)
    require(not unknown, f"{env_file.name} sets {unknown}, which the service does not read")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compose-file", type=Path, default=REPO / "docker-compose.yml")
    args = parser.parse_args(argv)
    if shutil.which("docker-compose") is None:
        print(
            "docker-compose is not installed (apt-get install docker-compose; or make test-tools)",
            file=sys.stderr,
        )
        return 2
    compose = args.compose_file.resolve()
    try:
        raw = yaml.safe_load(compose.read_text(encoding="utf-8"))
        for profile in [None, *profiles_of(raw)]:
            config = compose_config(compose, profile)
            check_profile(profile, config, raw)
            services = len(config["services"])
            print(f"docker-compose config, profile {profile or '(none)'}: valid, {services} services")
        check_prometheus_targets(compose.parent / "deploy" / "prometheus.yml", raw)
        names = check_env_file(compose.parent / ".env.example")
        print(f".env.example: {len(names)} settings, all known to the service")
    except ComposeError as exc:
        print(f"compose check FAILED: {exc}", file=sys.stderr)
        return 1
    print("compose check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
