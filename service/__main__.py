"""`python -m service` / `vision-service`: serve the model repository with uvicorn.

The one launch command: the image's CMD, `make serve`, the tests, the benchmarks and the deployment checks all
start the service through it, so what is tested and measured is what runs in production.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from service.core.runtime import CUDA, ExecutionPlan, ProviderUnavailableError, plan_execution
from service.http.app import create_app
from service.http.lifecycle import Lifecycle
from service.http.server import DrainingServer, HeadLimits, SendLimits, connection_limit, protocol_for
from service.http.workers import LISTEN_FD_OPTION, Supervisor, bind, listening_socket, shared_budgets
from service.keys import ApiKeys, AuthConfigError
from service.observability.logs import configure_logging
from service.settings import Settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vision-service", description="Serve the model repository (VISION_* variables configure it)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="serving processes sharing the port, each with every model (default: VISION_WORKERS, else "
        "one per core on CPU and one on CUDA)",
    )
    parser.add_argument(LISTEN_FD_OPTION, type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="proxies whose X-Forwarded-For/-Proto are trusted, addresses or networks, comma-separated "
        "(default: VISION_FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1)",
    )
    return parser.parse_args(argv)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def check_configuration() -> ExecutionPlan:
    """Refuse, before serving, settings the service cannot honour: it must never start open or half-built."""
    settings = Settings()
    ApiKeys.from_settings(settings)
    return plan_execution(
        settings.provider,
        cores=settings.usable_cores,
        threads=settings.threads,
        workers=settings.inference_workers,
    )


def serving_processes(settings: Settings, plan: ExecutionPlan) -> int:
    """VISION_WORKERS, else one process per core on CPU, the measured best: on 2 cores two processes served
    6-9 % more than one at 16 clients (docs/benchmarks.md, "Several workers"). One on CUDA: each process
    would hold its own copy of every model on the device."""
    if settings.workers:
        return settings.workers
    return 1 if CUDA in plan.providers else settings.usable_cores


def _one_line(error: ValidationError) -> str:
    """Each refused setting as `VISION_NAME: reason`, so a log line says what to change."""
    return "; ".join(
        f"{'VISION_' + str(item['loc'][0]).upper() if item['loc'] else 'settings'}: {item['msg']}"
        for item in error.errors()
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        plan = check_configuration()
    except ValidationError as exc:
        sys.exit(f"vision-service: configuration refused: {_one_line(exc)}")
    except (AuthConfigError, ProviderUnavailableError) as exc:
        sys.exit(f"vision-service: configuration refused: {exc}")
    settings = Settings()
    workers = serving_processes(settings, plan) if args.workers is None else args.workers
    if args.listen_fd is None and workers > 1:
        sys.exit(supervise(args, settings, workers))
    app = create_app(settings, serve_when_loaded=args.listen_fd is not None)
    lifecycle: Lifecycle = app.lifecycle
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=protocol_for(
            lifecycle,
            HeadLimits(settings.header_timeout_seconds, settings.max_header_bytes, settings.max_headers),
            SendLimits(settings.send_timeout_seconds, app.bodies),
            connection_limit(settings.max_connections),
        ),
        # The service logs one structured line per request itself, so uvicorn's access log would repeat it.
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips or settings.forwarded_allow_ips,
        timeout_graceful_shutdown=settings.shutdown_seconds,
        log_config=None,
    )
    sockets = None if args.listen_fd is None else [listening_socket(args.listen_fd)]
    companions = []
    if settings.grpc_port:
        # gRPC beside REST, on the same engine and keys: every worker process serves both ports. Imported
        # here: grpcio and protobuf are 10 MiB a process with gRPC off does not need.
        from service.grpc.server import GrpcServer

        companions.append(GrpcServer(app.state.engine, settings, app.state.api_keys, args.host))
    DrainingServer(
        config,
        lifecycle,
        settings.drain_seconds,
        reload=app.state.engine.reload,
        companions=companions,
        shutdown_seconds=settings.shutdown_seconds,
    ).run(sockets)


def supervise(args: argparse.Namespace, settings: Settings, workers: int) -> int:
    """Bind the port and keep `workers` copies of this command serving on it."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        sockets = bind(args.host, args.port, workers)
    except OSError as exc:
        sys.exit(f"vision-service: cannot listen on {args.host}:{args.port}: {exc.strerror}")
    command = [sys.executable, "-m", "service"]
    if args.forwarded_allow_ips is not None:
        command += ["--forwarded-allow-ips", args.forwarded_allow_ips]
    return Supervisor(command, sockets, settings.usable_cores, shared_budgets(settings, workers)).run()


if __name__ == "__main__":
    main()
