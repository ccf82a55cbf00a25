"""Request ids, Server-Timing, the access log line and /metrics, through a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from scrape import sample_value
from threaded_server import gated_app, serving

from service.http import gate
from service.http.routes import health
from service.observability import logs, metrics, timing

MODEL = "toy:3"
INFERENCE_SECONDS = 0.004
HEX_ID = re.compile(r"[0-9a-f]{32}")


def build_app() -> FastAPI:
    """A tiny app whose handler uses every timing hook the real routes use."""
    app = gated_app()
    app.include_router(health.router)

    @app.post("/items/{item_id}")
    async def handle(item_id: str) -> dict[str, str | None]:
        timings = timing.current()
        assert timings is not None
        timing.use_model(MODEL)
        with timing.stage("decode"):
            await asyncio.to_thread(sum, range(1000))
        await record_inference()
        await asyncio.to_thread(timing.record, "postprocess", 0.0015)
        metrics.observe_batch(MODEL, 3)
        metrics.set_queue_depth(MODEL, 2)
        return {"item": item_id, "request_id": timings.request_id}

    @app.get("/broken")
    async def broken() -> None:
        raise HTTPException(status_code=503, detail="not ready")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    @app.get("/crash-mid-stream")
    async def crash_mid_stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            raise RuntimeError("a bug after the headers")
            yield b"never"

        return StreamingResponse(chunks())

    return app


async def record_inference() -> None:
    """Code awaited from the handler sees the same request's timings."""
    timing.record("inference", INFERENCE_SECONDS)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving(build_app()) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


def parse_server_timing(header: str) -> dict[str, float]:
    entries = (item.strip().split(";dur=") for item in header.split(","))
    return {name: float(duration) for name, duration in entries}


def access_records(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "vision.access" and record.fields["request_id"] == request_id  # type: ignore[attr-defined]
    ]


def test_sane_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.post("/items/1", headers={"X-Request-ID": "client-42.retry_1"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "client-42.retry_1"
    assert response.json()["request_id"] == "client-42.retry_1"


def test_request_id_is_generated_when_absent(client: httpx.Client) -> None:
    first = client.post("/items/1").headers["x-request-id"]
    second = client.post("/items/1").headers["x-request-id"]
    assert HEX_ID.fullmatch(first)
    assert HEX_ID.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("insane", ["a" * 129, "has space", "semi;colon", "new\\nline", 'quote"d', "ünï"])
def test_insane_request_id_is_replaced(client: httpx.Client, insane: str) -> None:
    response = client.post("/items/1", headers={"X-Request-ID": insane.encode()})
    echoed = response.headers["x-request-id"]
    assert echoed != insane
    assert HEX_ID.fullmatch(echoed)
    assert response.json()["request_id"] == echoed


def test_server_timing_header_agrees_with_the_log_line(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vision.access")
    response = client.post("/items/7", headers={"X-Request-ID": "timing-check"})
    header = parse_server_timing(response.headers["server-timing"])

    records = access_records(caplog, "timing-check")
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert list(header) == ["decode", "inference", "postprocess", "total"]
    assert fields["stages_ms"] == {name: value for name, value in header.items() if name != "total"}
    assert fields["duration_ms"] == header["total"]
    assert header["inference"] == INFERENCE_SECONDS * 1000
    assert header["postprocess"] == 1.5
    assert header["decode"] > 0
    assert fields["route"] == "/items/{item_id}"
    assert (fields["method"], fields["status"], fields["model"]) == ("POST", 200, MODEL)


def test_failed_request_is_logged_with_its_status_and_no_stages(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vision.access")
    response = client.get("/broken", headers={"X-Request-ID": "broken-1"})
    assert response.status_code == 503
    assert list(parse_server_timing(response.headers["server-timing"])) == ["total"]
    (record,) = access_records(caplog, "broken-1")
    assert record.fields["status"] == 503  # type: ignore[attr-defined]
    assert record.fields["stages_ms"] == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("/crash", {"X-Request-ID": "crash-1"}),
        ("/crash", {}),
        # The headers were on their way: held back, they give way to a clean 500 rather than a cut response.
        ("/crash-mid-stream", {"X-Request-ID": "crash-2"}),
    ],
)
def test_unexpected_error_names_its_request_id_in_answer_and_logs(
    client: httpx.Client, caplog: pytest.LogCaptureFixture, path: str, sent: dict[str, str]
) -> None:
    caplog.set_level(logging.INFO)
    response = client.get(path, headers=sent)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    request_id = response.headers["x-request-id"]
    assert HEX_ID.fullmatch(request_id) if not sent else request_id == sent["X-Request-ID"]
    (error,) = [record for record in caplog.records if record.name == "vision.errors"]
    assert error.fields == {"request_id": request_id}  # type: ignore[attr-defined]
    assert error.exc_info is not None
    assert "a bug" in str(error.exc_info[1])
    (access,) = access_records(caplog, request_id)
    assert access.fields["status"] == 500  # type: ignore[attr-defined]


def test_unmatched_paths_share_one_route_label(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vision.access")
    client.get("/no/such/path/123", headers={"X-Request-ID": "lost-1"})
    (record,) = access_records(caplog, "lost-1")
    assert record.fields["route"] == gate.UNMATCHED_ROUTE  # type: ignore[attr-defined]
    assert "/no/such/path/123" not in client.get("/metrics").text


def test_metrics_have_real_values_after_traffic(client: httpx.Client) -> None:
    route = {"route": "/items/{item_id}", "method": "POST", "status": "200"}
    stage = {"stage": "inference", "model": MODEL}
    before = client.get("/metrics").text
    for item in range(5):
        assert client.post(f"/items/{item}").status_code == 200
    metrics.set_models_loaded([("old", 1, "classify", "cpu")])
    metrics.set_models_loaded([("toy", 3, "classify", "cpu"), ("toy", 4, "classify", "cuda")])
    metrics.set_model_load_failures(2)
    after = client.get("/metrics")

    assert after.headers["content-type"].startswith("text/plain")
    text = after.text

    def grew(name: str, labels: dict[str, str]) -> float:
        return sample_value(text, name, labels) - sample_value(before, name, labels)

    assert grew("vision_requests_total", route) == 5
    assert grew("vision_request_duration_seconds_count", {"route": "/items/{item_id}"}) == 5
    assert grew("vision_stage_duration_seconds_count", stage) == 5
    assert grew("vision_stage_duration_seconds_sum", stage) == pytest.approx(5 * INFERENCE_SECONDS)
    assert grew("vision_stage_duration_seconds_count", {"stage": "decode", "model": MODEL}) == 5
    assert grew("vision_batch_size_count", {"model": MODEL}) == 5
    assert grew("vision_batch_size_bucket", {"model": MODEL, "le": "2.0"}) == 0
    assert grew("vision_batch_size_bucket", {"model": MODEL, "le": "4.0"}) == 5
    assert sample_value(text, "vision_queue_depth", {"model": MODEL}) == 2
    loaded = {"model": "toy", "task": "classify"}
    assert sample_value(text, "vision_models_loaded", {**loaded, "version": "4", "provider": "cuda"}) == 1
    assert sample_value(text, "vision_models_loaded", {**loaded, "version": "3", "provider": "cpu"}) == 1
    assert 'model="old"' not in text
    assert sample_value(text, "vision_model_load_failures", {}) == 2


def test_metrics_route_survives_many_apps() -> None:
    async def scrape(app: FastAPI) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            return await http.get("/metrics")

    for _ in range(3):
        response = asyncio.run(scrape(build_app()))
        assert response.status_code == 200
        assert "vision_requests_total" in response.text


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Puts back the logging set-up that `configure_logging` changes."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    uvicorn_filters = list(logging.getLogger("uvicorn.error").filters)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False
    logging.getLogger("uvicorn.error").filters[:] = uvicorn_filters


@pytest.mark.usefixtures("restore_logging")
def test_json_logging_writes_one_parseable_line_per_request(
    client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging("INFO", "json")
    logs.configure_logging("info", "json")
    client.post("/items/9", headers={"X-Request-ID": "json-line"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    mine = [line for line in lines if line.get("request_id") == "json-line"]
    assert len(mine) == 1
    assert mine[0]["logger"] == "vision.access"
    assert mine[0]["level"] == "info"
    assert mine[0]["route"] == "/items/{item_id}"
    assert set(mine[0]["stages_ms"]) == {"decode", "inference", "postprocess"}
    assert logging.getLogger("uvicorn.access").disabled


@pytest.mark.usefixtures("restore_logging")
def test_text_logging_keeps_the_fields(client: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging("info", "text")
    client.post("/items/9", headers={"X-Request-ID": "text-line"})
    (line,) = [line for line in capsys.readouterr().err.splitlines() if '"text-line"' in line]
    assert "vision.access: POST /items/{item_id} 200" in line
    assert 'model="toy:3"' in line


class OrderRecorder(logging.Handler):
    """Puts each access line into the same list as the ASGI messages the server is handed."""

    def __init__(self, events: list[str]) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append("log")


def asgi_events(app: FastAPI, path: str) -> list[str]:
    """Drive `app` as a server would for `POST path` and list what reached the server, in order."""
    events: list[str] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, object]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        more = "+" if message.get("more_body") else ""
        events.append({"http.response.start": "start", "http.response.body": "body" + more}[message["type"]])

    handler = OrderRecorder(events)
    logs.access_logger.addHandler(handler)
    previous = logs.access_logger.level
    logs.access_logger.setLevel(logging.INFO)
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        logs.access_logger.removeHandler(handler)
        logs.access_logger.setLevel(previous)
    return events


def test_headers_and_body_leave_back_to_back_after_the_log_line() -> None:
    # A replica killed between headers and body leaves the proxy a response it can neither finish nor retry.
    assert asgi_events(build_app(), "/items/7") == ["log", "start", "body"]


def test_streamed_response_starts_with_its_first_chunk() -> None:
    app = build_app()

    @app.post("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b"]))

    assert asgi_events(app, "/stream") == ["start", "body+", "body+", "log", "body"]


@pytest.mark.usefixtures("restore_logging")
def test_a_500_is_logged_once_with_its_request_id(
    client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging("info", "json")
    client.get("/crash", headers={"X-Request-ID": "crash-once"})
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.error("Exception in ASGI application\n", exc_info=RuntimeError("not handled by us"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    tracebacks = [line for line in lines if "exception" in line]
    assert [line["logger"] for line in tracebacks] == ["vision.errors", "uvicorn.error"]
    assert tracebacks[0]["request_id"] == "crash-once"
    assert "not handled by us" in tracebacks[1]["exception"]
