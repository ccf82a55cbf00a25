"""The load balancer for real: nginx with deploy/nginx.conf before two `python -m service` processes.

A bounded load test (300 POST /classify, 8 at a time) runs through nginx while one backend is killed
(SIGKILL, requests in flight) and restarted; not one request may fail. Also checks that X-Request-ID passes
through, that an upload over the body limit gets the JSON 413, and that the limit matches the service's own.
No proxy can save a response whose headers it has already forwarded; the service writes headers and body back
to back (service/http/middleware.py), so a kill lands between the two only in a window of microseconds.

    python deploy/checks/nginx_lb.py [--env VISION_MODELS_DIR=/path]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image
from procs import Process, free_port, wait_until_ok

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx.conf"
COMPOSE_UPSTREAMS = REPO / "deploy" / "nginx" / "upstreams.conf"
sys.path.insert(0, str(REPO))

from service.settings import Settings  # noqa: E402

PHASE_REQUESTS = 100
CONCURRENCY = 8
KILL_AFTER = 30
READY_TIMEOUT = 120.0


class CheckError(RuntimeError):
    """The load balancer lost requests or does not behave as configured."""


@dataclass
class LoadResult:
    ok: int = 0
    failures: list[str] = field(default_factory=list)


def body_limit_bytes(conf: str) -> int:
    match = re.search(r"client_max_body_size\s+(\d+)([kKmMgG]?);", conf)
    if match is None:
        raise CheckError("deploy/nginx.conf sets no client_max_body_size")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * scale


def upstream_parameters() -> str:
    """The compose upstream line's parameters (max_fails, fail_timeout), reused for the loopback backends."""
    for line in COMPOSE_UPSTREAMS.read_text(encoding="utf-8").splitlines():
        words = line.split("#")[0].strip().rstrip(";").split()
        if words[:1] == ["server"]:
            return " ".join(words[2:])
    raise CheckError(f"{COMPOSE_UPSTREAMS} has no server line")


def fail_timeout_seconds() -> float:
    match = re.search(r"fail_timeout=(\d+)s?\b", upstream_parameters())
    return float(match.group(1)) if match else 10.0


def render_conf(directory: Path, backend_ports: list[int], listen_port: int) -> Path:
    """deploy/nginx.conf unchanged, with the two includes it expects pointing at loopback."""
    (directory / "vision").mkdir(parents=True)
    conf = directory / "nginx.conf"
    shutil.copy(NGINX_CONF, conf)
    parameters = upstream_parameters()
    servers = "".join(f"server 127.0.0.1:{port} {parameters};\n" for port in backend_ports)
    (directory / "vision" / "upstreams.conf").write_text(servers, encoding="utf-8")
    (directory / "vision" / "listen.conf").write_text(f"listen 127.0.0.1:{listen_port};\n", encoding="utf-8")
    return conf


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise CheckError("nginx is not installed (apt-get install nginx; or make test-tools)")
    return found


class Backend:
    """One `python -m service` on a fixed loopback port, which can be killed and started again."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.env = env
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.process = self.start()

    def start(self) -> Process:
        argv = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = Process(argv, env=self.env, cwd=REPO, log_path=self.log)
        return self.process

    def wait_ready(self) -> None:
        wait_until_ok(f"{self.url}/healthz/ready", self.process, READY_TIMEOUT)


def sample_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 160, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


async def load(client: httpx.AsyncClient, count: int, on_done: asyncio.Event | None = None) -> LoadResult:
    """`count` POST /classify through nginx, CONCURRENCY at a time; sets `on_done` after KILL_AFTER."""
    result = LoadResult()
    image = sample_png()
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            index = queue.pop()
            try:
                response = await client.post("/classify", files={"image": ("g.png", image, "image/png")})
            except httpx.HTTPError as exc:
                result.failures.append(f"request {index}: {exc!r}")
            else:
                if response.status_code == 200 and response.json()["results"][0]["predictions"]:
                    result.ok += 1
                else:
                    result.failures.append(f"request {index}: {response.status_code} {response.text[:200]}")
            if on_done is not None and result.ok + len(result.failures) >= KILL_AFTER:
                on_done.set()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return result


async def kill_when(event: asyncio.Event, backend: Backend) -> None:
    await event.wait()
    backend.process.kill()
    print(f"killed backend :{backend.port} (SIGKILL) with requests in flight")


def classify_count(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    pattern = r'^vision_requests_total\{[^}]*route="/classify"[^}]*status="200"[^}]*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, flags=re.MULTILINE))


async def run_load(lb_url: str, victim: Backend) -> list[LoadResult]:
    """Three phases of PHASE_REQUESTS: victim killed mid-phase, victim restarting, both up again."""
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=lb_url, timeout=60, limits=limits) as client:
        kill_now = asyncio.Event()
        first, _ = await asyncio.gather(load(client, PHASE_REQUESTS, kill_now), kill_when(kill_now, victim))
        print(f"phase 1 (backend killed mid-way): {first.ok} ok, {len(first.failures)} failed")
        victim.start()
        second, _ = await asyncio.gather(load(client, PHASE_REQUESTS), asyncio.to_thread(victim.wait_ready))
        print(f"phase 2 (backend restarting): {second.ok} ok, {len(second.failures)} failed")
        # nginx tries a failed server again only after fail_timeout.
        await asyncio.sleep(fail_timeout_seconds() + 1)
        third = await load(client, PHASE_REQUESTS)
        print(f"phase 3 (both backends up): {third.ok} ok, {len(third.failures)} failed")
    return [first, second, third]


def check_edges(lb_url: str, limit: int) -> None:
    """Request ids pass through nginx both ways; an upload over the limit gets the API's JSON envelope."""
    echoed = httpx.get(f"{lb_url}/healthz/live", headers={"X-Request-ID": "lb-check-1"}, timeout=10)
    if echoed.headers.get("x-request-id") != "lb-check-1":
        raise CheckError(f"X-Request-ID did not pass through nginx: {dict(echoed.headers)}")
    generated = httpx.get(f"{lb_url}/healthz/live", timeout=10).headers.get("x-request-id", "")
    if not re.fullmatch(r"[0-9a-f]{32}", generated):
        raise CheckError(f"nginx did not send its own request id upstream: {generated!r}")
    too_big = httpx.post(
        f"{lb_url}/classify", content=b"\0" * (limit + 1), headers={"Content-Type": "image/png"}, timeout=30
    )
    if too_big.status_code != 413 or too_big.json()["error"]["code"] != "payload_too_large":
        raise CheckError(f"an upload over {limit} bytes got {too_big.status_code} {too_big.text[:200]}")
    print(f"X-Request-ID passes through; {limit + 1} bytes -> 413 payload_too_large (JSON)")


def retried_requests(nginx_log: Path) -> int:
    """Access-log lines whose request nginx sent to more than one upstream."""
    count = 0
    for line in nginx_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{") and "," in json.loads(line).get("upstream", ""):
            count += 1
    return count


def check_lb(env_overrides: dict[str, str]) -> None:
    conf_text = NGINX_CONF.read_text(encoding="utf-8")
    limit = body_limit_bytes(conf_text)
    service_limit = Settings.model_fields["max_upload_bytes"].default
    if limit != service_limit:
        raise CheckError(
            f"nginx client_max_body_size {limit} != VISION_MAX_UPLOAD_BYTES default {service_limit}"
        )
    nginx = nginx_binary()
    scratch = Path(tempfile.mkdtemp(prefix="nginx-lb-"))
    ports: list[int] = []
    for _ in range(3):
        ports.append(free_port(taken=ports))
    # Backends are killed outright here; stopping them at the end needs no drain.
    env = {**os.environ, "VISION_DRAIN_SECONDS": "0", **env_overrides}
    backends = [Backend(port, env, scratch / f"backend-{port}.log") for port in ports[:2]]
    conf = render_conf(scratch / "conf", ports[:2], ports[2])
    nginx_log = scratch / "nginx.log"
    balancer = Process(
        [nginx, "-p", str(conf.parent), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        env=dict(os.environ),
        cwd=scratch,
        log_path=nginx_log,
    )
    lb_url = f"http://127.0.0.1:{ports[2]}"
    try:
        for backend in backends:
            backend.wait_ready()
        wait_until_ok(f"{lb_url}/nginx-health", balancer, 30)
        print(f"nginx :{ports[2]} -> backends :{ports[0]}, :{ports[1]} ({upstream_parameters()})")
        check_edges(lb_url, limit)
        results = asyncio.run(run_load(lb_url, backends[0]))
        failures = [failure for result in results for failure in result.failures]
        total = sum(result.ok for result in results) + len(failures)
        retried = retried_requests(nginx_log)
        print(f"{total} requests, {len(failures)} failed, {retried} retried on the other backend")
        if failures:
            raise CheckError(f"{len(failures)} requests failed through nginx: {failures[:5]}")
        served = classify_count(backends[0].url)
        if served == 0:
            raise CheckError("the restarted backend never got traffic back from nginx")
        print(f"restarted backend served {served:.0f} requests after coming back")
    finally:
        balancer.stop()
        for backend in backends:
            backend.process.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="backend settings")
    args = parser.parse_args(argv)
    try:
        check_lb(dict(pair.split("=", 1) for pair in args.env))
    except (CheckError, RuntimeError) as exc:
        print(f"load-balancer check FAILED: {exc}", file=sys.stderr)
        return 1
    print("load-balancer check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
