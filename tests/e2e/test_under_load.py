"""The service under sustained load, as an operator runs it: a soak with steady memory, a reload that loses
no request, and a SIGTERM drain that fails no accepted request. Live servers, real clients, loopback only."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import onnx_models
from bundled import digit_png, held_out_digits
from conftest import REPO_ROOT, ServerFactory, encode, solid
from load import Outcomes, rss_bytes, run_clients

from service.settings import DEFAULT_MODELS
from training.data.synth import render_scene

SOAK_REQUESTS = 5000
WARM_UP_REQUESTS = 1000
CLIENTS = 32
ADMIN_KEY = "an-admin-key-for-the-load-tests"


def mixed_requests() -> list[tuple[str, str, dict]]:
    """One of each kind a client sends: the three tasks, V2 tensors, listings and probes."""
    rng = np.random.default_rng(3)
    scene = encode(render_scene(rng).image, "PNG")
    digits, _ = held_out_digits()
    pixels = np.asarray(digits[0], dtype=np.float32).reshape(8, 8)
    tensor = np.kron(pixels * (255 / 16), np.ones((4, 4)))[:, :, None]
    infer = {
        "inputs": [
            {"name": "image", "shape": [1, 32, 32, 1], "datatype": "FP32", "data": tensor.ravel().tolist()}
        ]
    }
    upload = {"files": {"image": ("scene.png", scene, "image/png")}}
    return [
        ("POST", "/classify", upload),
        ("POST", "/detect", upload),
        ("POST", "/segment/json", {**upload, "params": {"style": "color"}}),
        (
            "POST",
            "/classify",
            {
                "files": {"image": ("digit.png", digit_png(digits[1]), "image/png")},
                "params": {"model": "digits"},
            },
        ),
        ("POST", "/v2/models/digits/infer", {"content": json.dumps(infer)}),
        ("GET", "/models", {}),
        ("GET", "/healthz/ready", {}),
    ]


def test_a_soak_of_mixed_requests_has_no_5xx_and_steady_memory(start_server: ServerFactory) -> None:
    server = start_server(REPO_ROOT / "models", default_models=json.dumps(DEFAULT_MODELS))
    kinds = mixed_requests()

    async def send(client: httpx.AsyncClient, index: int) -> httpx.Response:
        method, path, options = kinds[index % len(kinds)]
        return await client.request(method, path, **options)

    warm_up = asyncio.run(run_clients(server.url, CLIENTS, send, requests=WARM_UP_REQUESTS))
    after_warm_up = rss_bytes(server.process.pid)
    started = time.monotonic()
    soak = asyncio.run(run_clients(server.url, CLIENTS, send, requests=SOAK_REQUESTS))
    seconds = time.monotonic() - started
    at_end = rss_bytes(server.process.pid)
    print(
        f"soak: {soak.total} requests at {CLIENTS} clients in {seconds:.1f} s, {dict(soak.statuses)}, RSS"
        f"  {after_warm_up / 2**20:.0f} MiB after warm-up, {at_end / 2**20:.0f} MiB at the end"
    )
    assert warm_up.statuses == {200: WARM_UP_REQUESTS}
    assert soak.statuses == {200: SOAK_REQUESTS}, (dict(soak.statuses), dict(soak.errors))
    assert abs(at_end - after_warm_up) <= 0.10 * after_warm_up
    assert "Traceback" not in server.logs()


def top(answer: dict) -> tuple[int, str]:
    return answer["model"]["version"], answer["results"][0]["predictions"][0]["label"]


def red_png() -> bytes:
    return encode(solid((255, 0, 0)), "PNG")


def test_a_reload_under_load_loses_no_request(start_server: ServerFactory, tmp_path: Path) -> None:
    repository, staging = tmp_path / "models", tmp_path / "staging"
    onnx_models.colour_classifier(repository, name="m", version=1)
    # Written beforehand and moved in, as an operator would: building it would stall the clients' loop.
    new_version = onnx_models.brightness_classifier(staging, name="m", version=2).parent
    server = start_server(repository, default_models='{"classify": "m"}', admin_key=ADMIN_KEY)
    image = red_png()

    async def send(client: httpx.AsyncClient, index: int) -> httpx.Response:
        return await client.post("/classify", files={"image": ("red.png", image, "image/png")})

    async def reload_while_loaded() -> tuple[Outcomes, float, float]:
        done = asyncio.Event()
        clients = asyncio.create_task(run_clients(server.url, 16, send, until=done))
        await asyncio.sleep(2.0)
        new_version.rename(repository / "m" / "2")
        asked = time.monotonic()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as admin:
            loaded = await admin.post("/v2/repository/models/m/load", headers={"X-API-Key": ADMIN_KEY})
        swapped = time.monotonic()
        assert loaded.status_code == 200, loaded.text
        await asyncio.sleep(1.0)
        done.set()
        return await clients, asked, swapped

    outcomes, asked, swapped = asyncio.run(reload_while_loaded())
    # Answered before the reload was asked for: the old version. Sent after it was done: the new. In between,
    # either: a request takes its model version when it runs.
    before = {top(a.response.json()) for a in outcomes.answers if a.received < asked}
    after = {top(a.response.json()) for a in outcomes.answers if a.sent > swapped}
    print(f"reload under load: {outcomes.total} requests, {dict(outcomes.statuses)}, {dict(outcomes.errors)}")
    assert outcomes.errors == {}
    assert set(outcomes.statuses) == {200}
    assert before == {(1, "red")}
    assert after == {(2, "dark")}


def test_sigterm_under_load_fails_no_request(start_server: ServerFactory, test_models_dir: Path) -> None:
    # Clients act as a load balancer does: they stop sending a little after readiness turns 503.
    server = start_server(test_models_dir, drain_seconds=2, shutdown_seconds=10)
    image = red_png()

    async def send(client: httpx.AsyncClient, index: int) -> httpx.Response:
        return await client.post("/classify", files={"image": ("red.png", image, "image/png")})

    async def balancer_probe(client: httpx.AsyncClient, moved_away: asyncio.Event) -> float:
        while (await client.get("/healthz/ready")).status_code == 200:
            await asyncio.sleep(0.1)
        draining_seen = time.monotonic()
        await asyncio.sleep(0.5)
        moved_away.set()
        return draining_seen

    async def terminate_while_loaded() -> tuple[Outcomes, float, float, float]:
        moved_away = asyncio.Event()
        clients = asyncio.create_task(run_clients(server.url, 16, send, until=moved_away))
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as probe_client:
            probe = asyncio.create_task(balancer_probe(probe_client, moved_away))
            await asyncio.sleep(1.0)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            draining_seen = await probe
        outcomes = await clients
        while server.process.poll() is None:
            await asyncio.sleep(0.05)
        return outcomes, signalled, draining_seen, time.monotonic()

    outcomes, signalled, draining_seen, exited = asyncio.run(terminate_while_loaded())
    after_signal = sum(1 for answer in outcomes.answers if answer.sent > signalled)
    print(
        f"SIGTERM under load: {outcomes.total} requests ({after_signal} sent after the signal), "
        f"{dict(outcomes.statuses)}, errors {dict(outcomes.errors)}; readiness 503 "
        f"{draining_seen - signalled:.2f} s after the signal, exit after {exited - signalled:.1f} s"
    )
    assert outcomes.errors == {}
    assert set(outcomes.statuses) == {200}
    assert after_signal > 0
    # Readiness turned 503 during the drain, while requests were still answered; how soon is printed above,
    # not asserted: under a second make test the probe itself once took 1.03 s.
    assert signalled < draining_seen < exited
    assert 2 <= exited - signalled < 2 + 10
    assert "Traceback" not in server.logs()
