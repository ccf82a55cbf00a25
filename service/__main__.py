"""`python -m service` / `vision-service`: serve the model repository with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve the model repository (VISION_* variables configure it)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    # The service logs one structured line per request itself, so uvicorn's access log would repeat it.
    uvicorn.run("service.app:app", host=args.host, port=args.port, access_log=False, proxy_headers=True)


if __name__ == "__main__":
    main()
