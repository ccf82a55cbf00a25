"""`make bench`: every measurement in one run, results to JSON, then docs/benchmarks.md and its plots.

Order: the in-process limit, this service (start to ready, RSS, 1/16/64 clients per model with photos and
with thumbnails, INT8, a 12 MP upload), the null model against decode alone, the hand-off to another process,
`--workers` 1 and 2, a production-sized model, the naive Keras service, then the peers: BentoML, Ray Serve,
Triton through PyTriton, LitServe and KServe's ModelServer. Load comes from wrk. Each server runs alone on
the machine while measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from benchmarks import (
    against,
    grpc_load,
    handoff,
    images,
    inprocess,
    kernels,
    monitoring_cost,
    null_model,
    production,
    report,
    servers,
    wrk,
)
from service.settings import DEFAULT_MODELS, Settings

logger = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parent.parent
SERVICE_LEVELS = (1, 16, 64)
NAIVE_LEVELS = (1, 16)
PEER_LEVELS = (16,)
BAR_LEVEL = 16
STARTS = 3
# Turns each side of the monitoring comparison gets (9 give the median a 96 % interval between the second
# smallest and second largest pair); its second server listens this far above the first.
MONITOR_ROUNDS = 9
AGAINST_ROUNDS = 3
MONITOR_PORT_OFFSET = 8
INT8_SUFFIX = "-int8"
BATCH_KNOBS = {
    "workers",
    "threads",
    "inference_workers",
    "decode_workers",
    "max_batch",
    "max_delay_ms",
    "queue_size",
}


@dataclass(frozen=True)
class Options:
    models_dir: Path
    level_seconds: float
    inprocess_seconds: float
    port: int
    peer_python: Path
    ray_python: Path
    pytriton_python: Path
    litserve_python: Path
    kserve_python: Path
    keras_dir: Path
    results: Path
    doc: Path
    plots: Path


@dataclass(frozen=True)
class BundledModel:
    task: str
    name: str
    version: int
    path: Path
    metrics: dict[str, Any]
    quantized: bool


def is_quantized(path: Path) -> bool:
    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for node in graph.node)


def versions_of(models_dir: Path, name: str) -> list[BundledModel]:
    """Every version of `name` in the repository (Triton layout), lowest first."""
    found = sorted(
        (int(path.parent.name), path)
        for path in (models_dir / name).glob("*/model.onnx")
        if path.parent.name.isdigit()
    )
    models = []
    for version, path in found:
        meta = inprocess.read_metadata(path)
        models.append(BundledModel(meta.task, name, version, path, dict(meta.metrics), is_quantized(path)))
    return models


def bundled_models(models_dir: Path) -> tuple[dict[str, BundledModel], BundledModel | None]:
    """The FP32 model per task (highest version), and the INT8 classifier: a version or a `-int8` model."""
    found: dict[str, BundledModel] = {}
    int8: BundledModel | None = None
    for task, name in DEFAULT_MODELS.items():
        versions = versions_of(models_dir, name)
        fp32 = [model for model in versions if not model.quantized]
        if not fp32:
            logger.warning("bundled model %s missing under %s: %s is not measured", name, models_dir, task)
            continue
        found[task] = fp32[-1]
        if task == "classify":
            quantized = [model for model in versions if model.quantized]
            quantized += [m for m in versions_of(models_dir, name + INT8_SUFFIX) if m.quantized]
            int8 = quantized[-1] if quantized else None
    if not found:
        raise SystemExit(f"no bundled model under {models_dir} (run `make models`)")
    return found, int8


def route(task: str, model: BundledModel) -> str:
    return f"/{task}?model={model.name}&version={model.version}"


def measure_inprocess(model: BundledModel, jpegs: Sequence[bytes], opts: Options) -> list[dict[str, Any]]:
    configs = inprocess.default_configs(Settings().usable_cores)
    rows = []
    for measurement in inprocess.sweep(model.path, jpegs, configs, duration=opts.inprocess_seconds):
        rows.append(measurement.row())
        logger.info("in-process %s %s: %s", model.name, measurement.config.label, measurement.row())
    return rows


def adjacent_limit(
    model: BundledModel, jpegs: Sequence[bytes], best: dict[str, Any], opts: Options
) -> dict[str, Any]:
    """The best in-process configuration again, right before the service's 16-client level: the same
    minutes of a shared machine, so the ratio is not skewed by load that came and went in between. With it,
    decode and resize alone in that configuration, which splits the work into its layers."""
    config = inprocess.Config(best["streams"], best["threads"], best["batch"])
    row: dict[str, Any] = inprocess.measure(model.path, jpegs, config, duration=opts.level_seconds).row()
    decode = inprocess.measure_prepare_only(model.path, jpegs, config, duration=opts.level_seconds).row()
    row["decode_images_per_cpu_second"] = decode["images_per_cpu_second"]
    logger.info("in-process %s %s again: %s, decode alone %s", model.name, config.label, row, decode)
    return row


def int8_against_fp32(
    fp32: BundledModel, int8: BundledModel, best: dict[str, Any], jpegs: Sequence[bytes], opts: Options
) -> dict[str, dict[str, dict[str, Any]]]:
    """FP32 and INT8 with FP32's best configuration, `session.run` alone and decode + run, alternated
    twice (best of two) so that both models see the same minutes of a shared machine."""
    config = inprocess.Config(best["streams"], best["threads"], best["batch"])
    modes = {"run_only": inprocess.measure_run_only, "decode_and_run": inprocess.measure}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {mode: {"classify": [], "int8": []} for mode in modes}
    for _ in range(2):
        for key, model in (("classify", fp32), ("int8", int8)):
            for mode, measure in modes.items():
                rows[mode][key].append(
                    measure(model.path, jpegs, config, duration=opts.inprocess_seconds).row()
                )
    chosen = {
        mode: {key: max(found, key=lambda row: row["images_per_second"]) for key, found in by_model.items()}
        for mode, by_model in rows.items()
    }
    logger.info("INT8 against FP32: %s", chosen)
    return chosen


def level_summary(
    server: servers.Server,
    target: wrk.Target,
    uploads: Sequence[bytes],
    clients: int,
    opts: Options,
    split_cpu: bool = False,
) -> dict[str, Any]:
    result = wrk.measure(
        target,
        uploads,
        concurrency=clients,
        duration=opts.level_seconds,
        server_cpu=server.cpu,
        server_loop_cpu=server.loop_cpu if split_cpu else None,
        server_decode_cpu=server.decode_cpu if split_cpu else None,
    )
    summary = result.summary()
    logger.info("%s %s x%d: %s", server.name, target.path, clients, summary)
    return summary


def load_levels(
    tasks: Sequence[str],
    server: servers.Server,
    target_for: Callable[[str], wrk.Target],
    uploads: Sequence[bytes],
    levels: Sequence[int],
    opts: Options,
    before_level: Callable[[str, int], None] = lambda task, clients: None,
    split_cpu: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Every task at every concurrency level against one running server."""
    results: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        results[task] = []
        for clients in levels:
            before_level(task, clients)
            results[task].append(level_summary(server, target_for(task), uploads, clients, opts, split_cpu))
    return results


def server_facts(server: servers.Server) -> dict[str, Any]:
    return {
        "seconds_to_ready": round(server.seconds_to_ready, 3),
        "rss_mb_ready": round(server.rss() / 2**20, 1),
    }


def start_service(
    opts: Options,
    models_dir: Path,
    *extra: str,
    grpc_port: int = 0,
    settings: Mapping[str, str] | None = None,
    port: int | None = None,
    name: str = "service",
) -> servers.Server:
    """`python -m service` (the image's launcher) with default settings over `models_dir`, but for
    `settings` (VISION_* variables), on `port` (default the service's); gRPC only where a measurement asks
    for it, on `grpc_port`."""
    port = opts.port if port is None else port
    env = {
        "VISION_MODELS_DIR": str(models_dir),
        "VISION_LOG_LEVEL": "warning",
        "VISION_DRAIN_SECONDS": "0",
        "VISION_GRPC_PORT": str(grpc_port),
        **(settings or {}),
    }
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port), *extra]
    return servers.start(
        name, command, port=port, ready_path="/healthz/ready", env=env, log_dir=opts.results.parent
    )


def bench_service(
    models: dict[str, BundledModel],
    int8: BundledModel | None,
    best: dict[str, dict[str, Any]],
    uploads: dict[str, Sequence[bytes]],
    big: bytes,
    opts: Options,
) -> dict[str, Any]:
    """Start to ready, RSS, and every task at SERVICE_LEVELS with photos and with thumbnails, each
    16-client level next to the in-process limit re-measured on the same images."""
    # Cold starts vary with the page cache and the machine's load: time a few and keep the median.
    starts = []
    for _ in range(STARTS - 1):
        cold = start_service(opts, opts.models_dir)
        starts.append(cold.seconds_to_ready)
        cold.stop()
    server = start_service(opts, opts.models_dir)
    starts.append(server.seconds_to_ready)
    try:
        facts = server_facts(server)
        facts["seconds_to_ready"] = round(statistics.median(starts), 3)
        facts["starts"] = [round(seconds, 3) for seconds in starts]
        for images_name, images_set in uploads.items():
            adjacent: dict[str, dict[str, Any]] = {}

            def remeasure_limit(
                task: str,
                clients: int,
                images_set: Sequence[bytes] = images_set,
                adjacent: dict[str, dict[str, Any]] = adjacent,
            ) -> None:
                if clients == BAR_LEVEL and task in best:
                    adjacent[task] = adjacent_limit(models[task], images_set, best[task], opts)

            facts[report.levels_key(images_name)] = load_levels(
                list(models),
                server,
                lambda task: wrk.Target("127.0.0.1", opts.port, route(task, models[task])),
                images_set,
                SERVICE_LEVELS,
                opts,
                remeasure_limit,
                split_cpu=True,
            )
            facts[report.limit_key(images_name)] = adjacent
        photos = uploads["photo"]
        if int8 is not None and "classify" in models:
            target = wrk.Target("127.0.0.1", server.port, route("classify", int8))
            facts["int8_16"] = level_summary(server, target, photos, BAR_LEVEL, opts)
        if "classify" in models:
            facts["big_jpeg"] = big_upload(server, models["classify"], big, photos, opts)
        facts["rss_mb_after_load"] = round(server.rss() / 2**20, 1)
    finally:
        server.stop()
    return facts


def bench_monitoring(
    models: dict[str, BundledModel], photos: Sequence[bytes], opts: Options, rounds: int
) -> dict[str, Any]:
    """Every task at 16 clients with drift monitoring on and off (`VISION_MONITOR`), in rounds of a fresh
    server for each side, each task measured on both back to back (who goes first alternating), so each pair
    of levels sees the machine in the same state; each side's images per second and server CPU ms per image
    by round, the ratio of each pair, and their medians; and what monitoring adds to an image, timed alone
    after each round (`monitoring_cost`)."""
    # Fresh servers each round: two servers kept for a whole run had the monitoring one ahead on /classify in
    # 7 of 9 rounds, by up to 19 %, which added work cannot do, so a server's own speed belongs in the noise.
    flags = {"on": "true", "off": "false"}
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in flags}
    cpu: dict[str, list[dict[str, float]]] = {side: [] for side in flags}
    costs: list[dict[str, dict[str, float]]] = []
    for turn in range(rounds):
        order = ("on", "off") if turn % 2 == 0 else ("off", "on")
        started: dict[str, servers.Server] = {}
        levels: dict[str, dict[str, dict[str, Any]]] = {side: {} for side in flags}
        try:
            for side in order:
                started[side] = start_service(
                    opts,
                    opts.models_dir,
                    settings={"VISION_MONITOR": flags[side]},
                    port=opts.port + MONITOR_PORT_OFFSET * (side == "off"),
                    name=f"service-monitor-{side}",
                )
            for task, model in models.items():
                for side in order:
                    target = wrk.Target("127.0.0.1", started[side].port, route(task, model))
                    levels[side][task] = level_summary(started[side], target, photos, BAR_LEVEL, opts)
        finally:
            for server in started.values():
                server.stop()
        for side, measured in levels.items():
            runs[side].append({task: level["throughput"] for task, level in measured.items()})
            cpu[side].append({task: cpu_ms_per_image(level) for task, level in measured.items()})
        # Timed alone every round, so its median meets the machine as the servers' CPU per image did.
        costs.append(monitoring_cost.measure({task: model.path for task, model in models.items()}))
    ratios, cpu_ratios = pair_ratios(runs, models), pair_ratios(cpu, models)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cost": monitoring_cost.medians(costs),
        "clients": BAR_LEVEL,
        "seconds": opts.level_seconds,
        "rounds": rounds,
        "runs": runs,
        "median": medians(runs, models),
        "ratio": {task: statistics.median(values) for task, values in ratios.items()},
        "ratios": ratios,
        "cpu_ms_per_image": medians(cpu, models),
        "cpu_ratio": {task: statistics.median(values) for task, values in cpu_ratios.items()},
    }


def cpu_ms_per_image(level: dict[str, Any]) -> float:
    """The server's CPU per image it answered: what monitoring costs, which time the machine gives to other
    work does not enter, as it enters images per second."""
    return 1000 * level["server_cores"] * level["wall_s"] / level["ok"] if level["ok"] else float("nan")


def medians(runs: dict[str, list[dict[str, float]]], tasks: Iterable[str]) -> dict[str, dict[str, float]]:
    return {
        side: {task: statistics.median(run[task] for run in runs[side]) for task in tasks} for side in runs
    }


def pair_ratios(runs: dict[str, list[dict[str, float]]], tasks: Iterable[str]) -> dict[str, list[float]]:
    """Each round's on over off, per task."""
    return {
        task: [on[task] / off[task] for on, off in zip(runs["on"], runs["off"], strict=True)]
        for task in tasks
    }


def bench_workers(models: dict[str, BundledModel], photos: Sequence[bytes], opts: Options) -> dict[str, Any]:
    """`--workers` 1 and 2 (the cores of this machine) at 16 clients on /classify and /detect, and what each
    process holds in memory."""
    facts: dict[str, Any] = {}
    for workers in (1, 2):
        server = start_service(opts, opts.models_dir, "--workers", str(workers))
        try:
            tree = servers.process_tree(server.process.pid)
            row: dict[str, Any] = {
                "seconds_to_ready": round(server.seconds_to_ready, 3),
                "rss_mb_per_process": {str(pid): round(servers.rss_bytes([pid]) / 2**20, 1) for pid in tree},
                "rss_mb_total": round(server.rss() / 2**20, 1),
            }
            row["levels"] = load_levels(
                [task for task in ("classify", "detect") if task in models],
                server,
                lambda task: wrk.Target("127.0.0.1", opts.port, route(task, models[task])),
                photos,
                (BAR_LEVEL,),
                opts,
            )
            facts[str(workers)] = row
        finally:
            server.stop()
    return facts


def bench_production(photos: Sequence[bytes], opts: Options) -> dict[str, Any]:
    """A production-sized classifier (MobileNetV2 at 224x224, exported by `python -m training`): the
    in-process limit, and this service at 16 clients next to it."""
    models_dir = production.build(opts.results.parent / "production")
    model = versions_of(models_dir, production.NAME)[-1]
    rows = [
        measurement.row()
        for measurement in inprocess.sweep(
            model.path,
            photos,
            inprocess.default_configs(Settings().usable_cores),
            duration=opts.inprocess_seconds,
        )
    ]
    best = max(rows, key=lambda row: row["images_per_second"])
    server = start_service(opts, models_dir)
    try:
        limit = adjacent_limit(model, photos, best, opts)
        target = wrk.Target("127.0.0.1", server.port, route("classify", model))
        at16 = level_summary(server, target, photos, BAR_LEVEL, opts, split_cpu=True)
    finally:
        server.stop()
    return {"model": model_facts(model), "inprocess": rows, "adjacent_limit": limit, "service_16": at16}


def bench_null(
    classifier: BundledModel, uploads: dict[str, Sequence[bytes]], opts: Options
) -> dict[str, Any]:
    """The front end's own ceiling: the null model at 16 clients, photos and thumbnails, each next to decode
    and resize alone measured in the same minutes (the best of one and two streams per core)."""
    repository = null_model.build(opts.results.parent / "null", classifier.path)
    model = versions_of(repository, null_model.NAME)[-1]
    cores = Settings().usable_cores
    configs = [inprocess.Config(streams, 1, 1) for streams in (cores, 2 * cores)]
    facts: dict[str, Any] = {"model": model_facts(model)}
    server = start_service(opts, repository)
    try:
        for images_name, images_set in uploads.items():
            rows = [
                inprocess.measure_prepare_only(
                    model.path, images_set, config, duration=opts.level_seconds
                ).row()
                for config in configs
            ]
            logger.info("decode and resize alone, %s: %s", images_name, rows)
            target = wrk.Target("127.0.0.1", server.port, route("classify", model))
            facts[images_name] = {
                "decode_only": max(rows, key=lambda row: row["images_per_second"]),
                "decode_only_sweep": rows,
                "service_16": level_summary(server, target, images_set, BAR_LEVEL, opts, split_cpu=True),
            }
    finally:
        server.stop()
    return facts


def bench_grpc(classifier: BundledModel, jpegs: Sequence[bytes], opts: Options) -> dict[str, Any]:
    """gRPC against REST on one server, 16 clients each (benchmarks/grpc_load.py): tritonclient's raw and
    binary tensors; then, driven by h2load and wrk, the classifier's input tensor over ModelInfer and `/v2`'s
    binary extension, and a photo over ModelInfer and `/classify`."""
    spec = inprocess.read_metadata(classifier.path).input
    shape = [1, spec.height, spec.width, spec.channels]
    grpc_port = opts.port + 7
    server = start_service(opts, opts.models_dir, grpc_port=grpc_port)
    seconds = opts.level_seconds
    try:
        v2 = wrk.Target(
            "127.0.0.1", server.port, f"/v2/models/{classifier.name}/infer", grpc_load.rest_tensor(shape)
        )
        photo = wrk.Target("127.0.0.1", server.port, route("classify", classifier))
        return {
            "model": model_facts(classifier),
            "tensor_shape": shape,
            "tritonclient": {
                protocol: grpc_load.measure_tritonclient(
                    server, address, protocol, classifier.name, shape, BAR_LEVEL, seconds
                )
                for protocol, address in (
                    ("grpc", f"127.0.0.1:{grpc_port}"),
                    ("http", f"127.0.0.1:{server.port}"),
                )
            },
            "tensor": {
                "grpc": grpc_load.measure_grpc(
                    server, grpc_port, grpc_load.tensor_request(classifier.name, shape), BAR_LEVEL, seconds
                ),
                "rest": grpc_load.measure_rest(server, v2, b"", BAR_LEVEL, seconds),
            },
            "photo": {
                "grpc": grpc_load.measure_grpc(
                    server, grpc_port, grpc_load.image_request(classifier.name, jpegs[0]), BAR_LEVEL, seconds
                ),
                "rest": grpc_load.measure_rest(server, photo, jpegs[0], BAR_LEVEL, seconds),
            },
        }
    finally:
        server.stop()


def big_upload(
    server: servers.Server, model: BundledModel, big: bytes, jpegs: Sequence[bytes], opts: Options
) -> dict[str, Any]:
    """One client sending a 12 MP JPEG to /classify, next to the same client sending the usual upload."""
    target = wrk.Target("127.0.0.1", server.port, route("classify", model))
    seconds = min(opts.level_seconds, 5.0)
    large = wrk.measure(target, [big], concurrency=1, duration=seconds, server_cpu=server.cpu)
    small = wrk.measure(target, jpegs, concurrency=1, duration=seconds, server_cpu=server.cpu)
    return {
        "bytes": len(big),
        "width": images.BIG_SIZE[0],
        "height": images.BIG_SIZE[1],
        "large": large.summary(),
        "small": small.summary(),
        "prepare_ms_large": round(1000 * inprocess.decode_seconds(model.path, big, 5), 2),
        "prepare_ms_small": round(1000 * inprocess.decode_seconds(model.path, jpegs[0], 20), 2),
    }


def keras_runs(models: dict[str, BundledModel], runs_dir: Path) -> dict[str, Path]:
    """The trainer's run directory behind each bundled model: same task, architecture and input size."""
    found: dict[str, Path] = {}
    for task, model in models.items():
        trained = inprocess.read_metadata(model.path).trained
        candidates = []
        for run_json in runs_dir.glob("*/run.json"):
            config = json.loads(run_json.read_text()).get("config", {})
            same = config.get("task") == task and config.get("arch") == trained.get("architecture")
            same = same and [config.get("size")] * 2 == list(trained.get("image_size", []))
            if same and (run_json.parent / "model.keras").exists():
                candidates.append(run_json.parent)
        if candidates:
            found[task] = max(candidates, key=lambda run: (run / "model.keras").stat().st_mtime)
    return found


def stand_in_runs(models: dict[str, BundledModel], folder: Path) -> dict[str, Path]:
    """For each model, a Keras run of its task, architecture and input size trained for the benchmark alone
    (one epoch): the naive service's speed is the same as with the bundled model's own weights."""
    runs = {}
    for task, model in models.items():
        trained = inprocess.read_metadata(model.path).trained
        recipe = production.Recipe(
            task, trained["architecture"], trained["image_size"][0], max_objects=4 if task == "detect" else 1
        )
        runs[task] = production.train(folder / task, recipe)
    return runs


def bench_naive(models: dict[str, BundledModel], jpegs: Sequence[bytes], opts: Options) -> dict[str, Any]:
    checkpoints = keras_runs(models, opts.keras_dir)
    missing = {task: model for task, model in models.items() if task not in checkpoints}
    if missing:
        logger.info(
            "no `make models` run under %s for %s: training stand-ins", opts.keras_dir, sorted(missing)
        )
        checkpoints |= stand_in_runs(missing, opts.results.parent / "naive")
    port = opts.port + 1
    env = {
        "BENCH_NAIVE_MODELS": json.dumps({task: str(path) for task, path in checkpoints.items()}),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [sys.executable, "-m", "uvicorn", "benchmarks.naive_keras:app", "--host", "127.0.0.1"]
    facts = bench_other(
        Other("naive", [*command, "--port", str(port)], port, "/ready", env),
        levels=NAIVE_LEVELS,
        models=models,
        jpegs=jpegs,
        opts=opts,
    )
    facts["checkpoints"] = {task: str(path) for task, path in checkpoints.items()}
    facts["stand_ins"] = sorted(missing)
    return facts


@dataclass(frozen=True)
class Other:
    """A server to compare with: how to start it, where it answers, and how a task's request is sent."""

    name: str
    command: list[str]
    port: int
    ready_path: str
    env: dict[str, str]
    path: Callable[[str], str] = lambda task: f"/{task}"
    encode: wrk.Encoder = wrk.multipart


def peers(models: dict[str, BundledModel], opts: Options) -> dict[str, Other | str]:
    """The framework peers, each in its own environment (`make bench` builds them), or why one cannot run."""
    env = {
        "BENCH_PEER_MODELS": json.dumps({task: str(model.path) for task, model in models.items()}),
        "PYTHONPATH": str(ROOT),
    }
    found: dict[str, Other] = {}
    bentoml = opts.peer_python.parent / "bentoml"
    serve = [str(bentoml), "serve", "benchmarks.peer_bentoml:VisionPeer", "--host", "127.0.0.1"]
    found["bentoml"] = Other(
        "bentoml",
        [*serve, "--port", str(opts.port + 2)],
        opts.port + 2,
        "/readyz",
        {**env, "BENTOML_DO_NOT_TRACK": "true", "BENTOML_HOME": str(opts.results.parent / "bentoml-home")},
    )
    ray = opts.ray_python
    found["ray"] = Other(
        "ray",
        [str(ray), "-m", "benchmarks.peer_ray", str(opts.port + 3)],
        opts.port + 3,
        "/ready",
        {**env, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    pytriton = opts.pytriton_python
    found["pytriton"] = Other(
        "pytriton",
        [str(pytriton), "-m", "benchmarks.peer_pytriton", str(opts.port + 4)],
        opts.port + 4,
        "/v2/models/segment/ready",
        env,
        path=lambda task: f"/v2/models/{task}/infer",
        encode=wrk.triton_binary,
    )
    found["litserve"] = Other(
        "litserve",
        [str(opts.litserve_python), "-m", "benchmarks.peer_litserve", str(opts.port + 5)],
        opts.port + 5,
        "/health",
        env,
    )
    found["kserve"] = Other(
        "kserve",
        [str(opts.kserve_python), "-m", "benchmarks.peer_kserve", str(opts.port + 6)],
        opts.port + 6,
        "/v1/models/segment",
        env,
        path=lambda task: f"/v1/models/{task}:predict",
        encode=wrk.kserve_v1,
    )
    return {
        name: peer
        if Path(peer.command[0]).exists()
        else f"{peer.command[0]} missing: its environment was not created (`make bench` does)"
        for name, peer in found.items()
    }


def bench_peer(
    peer: Other | str, models: dict[str, BundledModel], jpegs: Sequence[bytes], opts: Options
) -> dict[str, Any]:
    if isinstance(peer, str):
        return {"error": peer}
    facts = bench_other(peer, levels=PEER_LEVELS, models=models, jpegs=jpegs, opts=opts)
    facts["version"] = peer_version(peer)
    return facts


def bench_other(
    other: Other,
    *,
    levels: Sequence[int],
    models: dict[str, BundledModel],
    jpegs: Sequence[bytes],
    opts: Options,
) -> dict[str, Any]:
    """Start a server to compare with, load each model's task at `levels` clients, stop it."""
    server = servers.start(
        other.name,
        other.command,
        port=other.port,
        ready_path=other.ready_path,
        env=other.env,
        log_dir=opts.results.parent,
        cwd=ROOT,
        timeout=180,
    )
    try:
        facts = server_facts(server)
        facts["levels"] = load_levels(
            list(models),
            server,
            lambda task: wrk.Target("127.0.0.1", other.port, other.path(task), other.encode),
            jpegs,
            levels,
            opts,
        )
        facts["rss_mb_after_load"] = round(server.rss() / 2**20, 1)
    finally:
        server.stop()
    return facts


# Each peer's distribution on PyPI, whose version the report gives.
PEER_PACKAGES = {
    "bentoml": "bentoml",
    "ray": "ray",
    "pytriton": "nvidia-pytriton",
    "litserve": "litserve",
    "kserve": "kserve",
}


def peer_version(peer: Other) -> str:
    package = PEER_PACKAGES[peer.name]
    python = Path(peer.command[0])
    python = python if python.name.startswith("python") else python.parent / "python"
    command = [str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def guarded(name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one side of the comparison; a side that fails is reported, not fatal."""
    try:
        return work()
    except Exception as exc:
        logger.exception("%s failed", name)
        return {"error": f"{type(exc).__name__}: {exc}"[:2000]}


def machine() -> dict[str, Any]:
    import numpy
    import onnxruntime

    cpuinfo = Path("/proc/cpuinfo").read_text()
    lines = cpuinfo.splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor()
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": Settings().usable_cores,
        "vector_flags": kernels.cpu_vector_flags(cpuinfo),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def model_facts(model: BundledModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "path": str(model.path.relative_to(ROOT)) if model.path.is_relative_to(ROOT) else str(model.path),
        "bytes": model.path.stat().st_size,
        "metrics": model.metrics,
        "quantized": model.quantized,
    }


def run(opts: Options) -> dict[str, Any]:
    started = time.perf_counter()
    models, int8 = bundled_models(opts.models_dir)
    jpegs, source = images.upload_set()
    uploads = {"photo": jpegs, "thumb": images.thumbnails(jpegs)}
    big = images.big_jpeg()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "images": {
            "source": source,
            "count": len(jpegs),
            "size": list(images.UPLOAD_SIZE),
            "thumb_size": list(images.THUMB_SIZE),
        },
        "settings": {"level_seconds": opts.level_seconds, "inprocess_seconds": opts.inprocess_seconds},
        "service_settings": Settings().model_dump(mode="json", include=BATCH_KNOBS),
        "models": {task: model_facts(model) for task, model in models.items()},
    }
    if int8 is not None:
        results["models"]["int8"] = model_facts(int8)
    measured = {**models, **({"int8": int8} if int8 else {})}
    results["inprocess"] = {task: measure_inprocess(model, jpegs, opts) for task, model in measured.items()}
    best = {
        task: max(rows, key=lambda row: row["images_per_second"])
        for task, rows in results["inprocess"].items()
    }
    if int8 is not None and "classify" in models:
        results["int8_vs_fp32"] = int8_against_fp32(models["classify"], int8, best["classify"], jpegs, opts)
        results["int8_gemm"] = kernels.gemm_speeds()
    results["service"] = guarded("service", lambda: bench_service(models, int8, best, uploads, big, opts))
    if "classify" in models:
        results["null"] = guarded("null", lambda: bench_null(models["classify"], uploads, opts))
    results["handoff"] = guarded("handoff", handoff.measure_all)
    if "classify" in models:
        results["grpc"] = guarded("grpc", lambda: bench_grpc(models["classify"], jpegs, opts))
    results["monitoring"] = guarded(
        "monitoring", lambda: bench_monitoring(models, jpegs, opts, MONITOR_ROUNDS)
    )
    results["workers"] = guarded("workers", lambda: bench_workers(models, jpegs, opts))
    results["production"] = guarded("production", lambda: bench_production(jpegs, opts))
    results["naive"] = guarded("naive", lambda: bench_naive(models, jpegs, opts))
    for name, peer in peers(models, opts).items():
        results[name] = guarded(name, lambda peer=peer: bench_peer(peer, models, jpegs, opts))
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    return results


def run_against(ref: str, rounds: int, opts: Options) -> dict[str, Any]:
    """This tree and `ref` in turn, /classify and /detect at the bar's level, on the bundled models."""
    models, _ = bundled_models(opts.models_dir)
    paths = {task: route(task, models[task]) for task in ("classify", "detect") if task in models}
    jpegs, _ = images.upload_set()
    with against.worktree(ROOT, ref) as earlier:
        sides = [
            against.Side("this tree", ROOT, against.commit_of(ROOT)),
            against.Side(ref, earlier, against.commit_of(ROOT, ref)),
        ]
        load = against.Load(
            paths, jpegs, opts.models_dir, opts.port, BAR_LEVEL, opts.level_seconds, opts.results.parent
        )
        compared = against.compare(sides, load, rounds)
    compared["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return compared


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Settings().models_dir)
    parser.add_argument("--level-seconds", type=float, default=8.0, help="measured seconds per load level")
    parser.add_argument("--inprocess-seconds", type=float, default=2.5, help="seconds per in-process config")
    parser.add_argument(
        "--port",
        type=int,
        default=18210,
        help="service port; naive +1, peers +2..+6, gRPC +7, monitoring off +8 (loopback)",
    )
    parser.add_argument("--peer-python", type=Path, default=ROOT / ".venv-peer" / "bin" / "python")
    parser.add_argument("--ray-python", type=Path, default=ROOT / ".venv-ray" / "bin" / "python")
    parser.add_argument("--pytriton-python", type=Path, default=ROOT / ".venv-pytriton" / "bin" / "python")
    parser.add_argument("--litserve-python", type=Path, default=ROOT / ".venv-litserve" / "bin" / "python")
    parser.add_argument("--kserve-python", type=Path, default=ROOT / ".venv-kserve" / "bin" / "python")
    parser.add_argument("--keras-dir", type=Path, default=ROOT / "runs", help="the trainer's run directories")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the doc from the results JSON")
    parser.add_argument(
        "--against",
        metavar="REF",
        help="only compare this tree with a git ref, served in turn; added to the results JSON and the doc",
    )
    parser.add_argument(
        "--monitoring",
        action="store_true",
        help="only compare drift monitoring on and off, served in turn; added to the results JSON and doc",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"turns each side gets: --against (default {AGAINST_ROUNDS}), --monitoring ({MONITOR_ROUNDS})",
    )
    args = parser.parse_args(argv)
    options = Options(
        models_dir=args.models_dir.resolve(),
        level_seconds=args.level_seconds,
        inprocess_seconds=args.inprocess_seconds,
        port=args.port,
        peer_python=args.peer_python,
        ray_python=args.ray_python,
        pytriton_python=args.pytriton_python,
        litserve_python=args.litserve_python,
        kserve_python=args.kserve_python,
        keras_dir=args.keras_dir,
        results=args.results,
        doc=args.doc,
        plots=args.doc.parent / "benchmarks",
    )
    return options, args


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    opts, args = parse_args(argv)
    if args.report_only:
        report.write(json.loads(opts.results.read_text()), opts.doc, opts.plots)
        return
    if args.monitoring:
        if not opts.results.exists():
            raise SystemExit(f"{opts.results} is missing: run `make bench` first, then compare")
        results = json.loads(opts.results.read_text())
        models, _ = bundled_models(opts.models_dir)
        rounds = args.rounds or MONITOR_ROUNDS
        results["monitoring"] = bench_monitoring(models, images.upload_set()[0], opts, rounds)
        opts.results.write_text(json.dumps(results, indent=2))
        report.write(results, opts.doc, opts.plots)
        logger.info("added monitoring on against off to %s and %s", opts.results, opts.doc)
        return
    if args.against:
        if not opts.results.exists():
            raise SystemExit(f"{opts.results} is missing: run `make bench` first, then compare")
        results = json.loads(opts.results.read_text())
        results["against"] = run_against(args.against, args.rounds or AGAINST_ROUNDS, opts)
        opts.results.write_text(json.dumps(results, indent=2))
        report.write(results, opts.doc, opts.plots)
        logger.info("added the comparison with %s to %s and %s", args.against, opts.results, opts.doc)
        return
    opts.results.parent.mkdir(parents=True, exist_ok=True)
    results = run(opts)
    opts.results.write_text(json.dumps(results, indent=2))
    report.write(results, opts.doc, opts.plots)
    logger.info("wrote %s and %s in %.0f s", opts.results, opts.doc, results["total_seconds"])
