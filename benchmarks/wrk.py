"""The benchmarks' client: `wrk`, Debian's C load generator, closed loop over keep-alive connections in one
thread, POSTing the uploads as multipart bodies from a Lua script (benchmarks/wrk.lua).

It shares the cores with the server under test, so its own CPU time is measured (from the kernel's account
of the finished child) and reported next to every result as a share of the server's.
"""

from __future__ import annotations

import base64
import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.stats import LevelResult

SCRIPT = Path(__file__).with_name("wrk.lua")
BOUNDARY = "vision-bench-boundary-7f3a"
TIMEOUT_S = 30
_MARK = "WRK_JSON "


Encoder = Callable[[bytes, int], tuple[dict[str, str], bytes]]


def multipart_body(field: str, filename: str, data: bytes, content_type: str = "image/jpeg") -> bytes:
    """One file part in multipart/form-data, as a browser or `curl -F` sends it."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def multipart(upload: bytes, index: int) -> tuple[dict[str, str], bytes]:
    """The upload as the task routes (and the framework peers) take it: multipart field `image`."""
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return {"Content-Type": content_type}, multipart_body("image", f"image{index}.jpg", upload)


def triton_binary(upload: bytes, index: int) -> tuple[dict[str, str], bytes]:
    """The upload as Triton takes it: an infer request whose JSON header is followed by the BYTES tensor
    (4-byte length, then the JPEG), per the binary data extension of the V2 protocol."""
    tensor = len(upload).to_bytes(4, "little") + upload
    header = {
        "inputs": [
            {
                "name": "image",
                "shape": [1, 1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(tensor)},
            }
        ],
        "outputs": [{"name": "answer", "parameters": {"binary_data": False}}],
    }
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return headers, head + tensor


def kserve_v1(upload: bytes, index: int) -> tuple[dict[str, str], bytes]:
    """The upload as KServe's documentation sends images: a V1 predict request, the JPEG base64-encoded in
    `{"instances": [{"image_bytes": {"b64": ...}}]}`. (KServe 0.21's V2 binary extension turns every BYTES
    tensor into UTF-8 text, so a JPEG cannot travel that way.)"""
    instance = {"image_bytes": {"b64": base64.b64encode(upload).decode("ascii")}}
    return {"Content-Type": "application/json"}, json.dumps({"instances": [instance]}).encode()


@dataclass(frozen=True)
class Target:
    """Where the load goes: loopback host and port, the path with its query, and how an upload is sent."""

    host: str
    port: int
    path: str
    encode: Encoder = multipart

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, upload: bytes, index: int) -> bytes:
        """The whole HTTP/1.1 request for one upload, as wrk will write it."""
        headers, body = self.encode(upload, index)
        head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        return head.encode("latin-1") + body


def executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: `make bench` installs Debian's package when run as root")
    return found


def run(
    target: Target,
    uploads: Sequence[bytes],
    *,
    concurrency: int,
    duration: float,
    server_cpu: Callable[[], float] = lambda: 0.0,
    server_loop_cpu: Callable[[], float] | None = None,
    server_decode_cpu: Callable[[], float] | None = None,
) -> LevelResult:
    """`concurrency` connections sending the uploads in turn for `duration` seconds."""
    with tempfile.TemporaryDirectory(prefix="wrk-bodies-") as folder:
        files = []
        for index, upload in enumerate(uploads):
            path = Path(folder) / f"{index}.http"
            path.write_bytes(target.request(upload, index))
            files.append(str(path))
        command = [
            executable(),
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={TIMEOUT_S}s",
            "-s",
            str(SCRIPT),
            target.url,
            "--",
            *files,
        ]
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = server_cpu()
        loop_before = server_loop_cpu() if server_loop_cpu else 0.0
        decode_before = server_decode_cpu() if server_decode_cpu else 0.0
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = parse(done.stdout)
    result = LevelResult(
        concurrency=concurrency,
        wall_seconds=report["duration_us"] / 1e6 or wall,
        statuses=statuses_of(report),
        latency_ms={q: report[f"p{q}_us"] / 1000 for q in (50, 95, 99)},
        client_cpu_seconds=cpu_of(client_after) - cpu_of(client_before),
        server_cpu_seconds=server_cpu() - server_before,
        shed_without_retry_after=report["shed_without_retry_after"],
    )
    if server_loop_cpu:
        result.server_loop_cpu_seconds = server_loop_cpu() - loop_before
    if server_decode_cpu:
        result.server_decode_cpu_seconds = server_decode_cpu() - decode_before
    return result


def measure(
    target: Target,
    uploads: Sequence[bytes],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    server_cpu: Callable[[], float] = lambda: 0.0,
    server_loop_cpu: Callable[[], float] | None = None,
    server_decode_cpu: Callable[[], float] | None = None,
) -> LevelResult:
    """Warm the level up (results dropped), then measure it."""
    if warmup > 0:
        run(target, uploads, concurrency=concurrency, duration=warmup)
    return run(
        target,
        uploads,
        concurrency=concurrency,
        duration=duration,
        server_cpu=server_cpu,
        server_loop_cpu=server_loop_cpu,
        server_decode_cpu=server_decode_cpu,
    )


def parse(stdout: str) -> dict[str, object]:
    """The JSON line the Lua script's `done` prints."""
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    raise ValueError(f"wrk printed no results:\n{stdout[-2000:]}")


def statuses_of(report: dict[str, object]) -> Counter[str]:
    """Answers by status, with wrk's time-outs and connection errors as `timeout` and `conn`."""
    counted: Counter[str] = Counter()
    for thread in report["statuses"]:  # type: ignore[union-attr]
        counted.update(thread)
    errors = report["connect_errors"] + report["read_errors"] + report["write_errors"]  # type: ignore[operator]
    if report["timeouts"]:
        counted["timeout"] = report["timeouts"]  # type: ignore[assignment]
    if errors:
        counted["conn"] = errors  # type: ignore[assignment]
    return counted


def cpu_of(usage: resource.struct_rusage) -> float:
    """User and system CPU seconds of a `getrusage` answer."""
    return usage.ru_utime + usage.ru_stime
