"""`python -m service` / `vision-service`: serve the model repository with uvicorn.

The one launch command: the image's CMD, `make serve`, the tests, the benchmarks and the deployment checks all
start the service through it, so what is tested and measured is what runs in production.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vision-service", description="Serve the model repository (VISION_* variables configure it)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-For/-Proto are trusted; '*' behind a load balancer you control",
    )
    parser.add_argument(
        "--graceful-shutdown-seconds",
        type=int,
        default=20,
        help="after SIGTERM, how long requests in flight may take to finish",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # The service logs one structured line per request itself, so uvicorn's access log would repeat it.
    uvicorn.run(
        "service.app:app",
        host=args.host,
        port=args.port,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=args.graceful_shutdown_seconds,
    )


if __name__ == "__main__":
    main()
