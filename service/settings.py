"""Service configuration: one pydantic-settings class read from `VISION_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service import cpus
from service.core.decoding import DEFAULT_DECODE_LIMITS, DecodeLimits
from service.core.engine import EngineConfig
from service.core.intake import RequestLimits
from service.core.monitor import MonitorConfig
from service.core.repository import DEFAULT_MAX_MODEL_BYTES

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODELS = {
    "classify": "shapes-classifier",
    "detect": "shapes-detector",
    "segment": "shapes-segmenter",
}

CommaList = Annotated[list[str], NoDecode]
ADMIN_KEY_MIN_LENGTH = 16


class Settings(BaseSettings):
    """Everything an operator can set; names are part of the interface (DESIGN.md, deployment files)."""

    model_config = SettingsConfigDict(env_prefix="VISION_", extra="ignore", frozen=True)

    models_dir: Path = Field(default=BUNDLED_MODELS_DIR, description="The model repository.")
    default_models: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_MODELS),
        description="Model per task when a request names none (JSON); else the first by name.",
    )
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Serving processes sharing the port, each on its own share of the cores with every "
        "model, dividing the body and pixel budgets; 0 = auto: one per core on CPU, one on CUDA (`--workers` "
        "overrides).",
    )
    cores: int = Field(
        default=0,
        ge=0,
        description="Cores the thread pools are sized for; 0 = auto: the CPUs this process may run on, "
        "capped by its container's CPU limit. `--workers N` divides them between the workers.",
    )
    threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads per session; 0 = auto.")
    inference_workers: int = Field(
        default=0, ge=0, description="Concurrent session runs per model; 0 = auto (cores on CPU, 1 on CUDA)."
    )
    decode_workers: int = Field(
        default=0, ge=0, description="Decode threads, each with its worker process; 0 = number of cores."
    )
    decode_memory_bytes: int = Field(
        default=DEFAULT_DECODE_LIMITS.memory_bytes,
        ge=64 * 2**20,
        description="Memory one image's decode may take in its worker process; past it, 413.",
    )
    decode_timeout_seconds: float = Field(
        default=DEFAULT_DECODE_LIMITS.seconds,
        gt=0,
        description="Time one image's decode may take; past it the worker is killed and replaced, and 413.",
    )
    max_batch: int = Field(default=8, ge=1, le=1024)
    max_delay_ms: float | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="How long a free worker waits to fill a batch; unset = auto (0 on CPU, 2 on CUDA).",
    )
    queue_size: int = Field(
        default=32, ge=1, description="Images waiting per model, and for the decoder, before 503."
    )
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="Bytes per request body.")
    max_pixels: int = Field(default=40_000_000, ge=1, description="Declared pixels (w x h) per image.")
    max_request_pixels: int = Field(default=64_000_000, ge=1, description="Declared pixels of one request.")
    pixel_budget: int = Field(
        default=128_000_000, ge=1, description="Declared pixels of every request in flight together."
    )
    body_budget_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Bytes of request bodies, and of answers not yet read, held by all connections together.",
    )
    max_images: int = Field(default=16, ge=1)
    header_timeout_seconds: float = Field(
        default=10, gt=0, description="From a connection's first byte (or its last answer) to a full head."
    )
    max_connections: int = Field(
        default=0,
        ge=0,
        description="Connections served at once; past it a request gets 503. 0 = auto: the open-files "
        "limit (raised to its hard ceiling at start) less 128.",
    )
    max_header_bytes: int = Field(
        default=32 * 1024, ge=1024, description="Bytes of one request head: its request line and headers."
    )
    max_headers: int = Field(default=100, ge=8, description="Header lines of one request.")
    body_idle_seconds: float = Field(default=10, gt=0, description="Longest pause inside a request body.")
    body_timeout_seconds: float = Field(default=60, gt=0, description="Longest time to receive one body.")
    request_timeout_seconds: float = Field(
        default=60, gt=0, description="Longest time to answer one request, body included (then 504)."
    )
    send_timeout_seconds: float = Field(
        default=30,
        gt=0,
        description="Longest time an answer may wait without its client reading a byte; then the connection "
        "is cut off and the answer's memory freed.",
    )
    grpc_port: int = Field(
        default=8001,
        ge=0,
        le=65535,
        description="The Open Inference Protocol over gRPC, beside REST on the same engine; 0 turns it off.",
    )
    drain_seconds: float = Field(
        default=5, ge=0, description="After SIGTERM: readiness 503 but still serving, so balancers move away."
    )
    shutdown_seconds: float = Field(
        default=20, ge=0, description="After the drain: how long requests in flight may take to finish."
    )
    api_keys: CommaList = Field(default_factory=list)
    api_keys_file: Path | None = Field(
        default=None,
        description="A file of keys, one a line, re-read when it changes; must hold one at start.",
    )
    protect_metrics: bool = Field(
        default=False,
        description="Put /metrics and readiness's detail (models, reasons) behind the API keys.",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="The key of the model-control routes (/v2/repository/...); they are off without one.",
    )
    max_model_bytes: int = Field(
        default=DEFAULT_MAX_MODEL_BYTES,
        ge=1,
        description="A model file larger than this is refused unread (each is read whole into memory).",
    )
    follow_symlinks: bool = Field(
        default=False, description="Serve model files that symlinks lead to outside the repository."
    )
    model_poll_seconds: float = Field(
        default=0, ge=0, description="Rescan the model repository this often (load-then-swap); 0 = never."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        min_length=1,
        description="Proxies whose X-Forwarded-For and -Proto are believed: addresses or networks, "
        "comma-separated; '*' believes any client, so only behind a proxy that every request passes.",
    )
    cors_origins: CommaList = Field(default_factory=list)
    log_format: Literal["json", "text"] = "text"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    warmup: bool = Field(default=True, description="Run each model once before reporting ready.")
    monitor: bool = Field(
        default=True,
        description="Watch each model version's answers for drift against the reference in its file.",
    )
    monitor_window: int = Field(
        default=1000, ge=10, le=1_000_000, description="How many of its last images drift is measured on."
    )
    monitor_minimum: int = Field(
        default=200, ge=1, description="Images a window needs before it reports drift."
    )

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("admin_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An env file lists every setting, so an empty value means "not set", not a short key.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("admin_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < ADMIN_KEY_MIN_LENGTH:
            raise ValueError(
                f"must be at least {ADMIN_KEY_MIN_LENGTH} characters: a short key can be guessed"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _limits_nest(self) -> Settings:
        # A limit wider than the one that contains it could never be reached: refuse rather than guess.
        if self.max_pixels > self.max_request_pixels:
            raise ValueError("VISION_MAX_PIXELS must not exceed VISION_MAX_REQUEST_PIXELS")
        if self.max_request_pixels > self.pixel_budget:
            raise ValueError("VISION_MAX_REQUEST_PIXELS must not exceed VISION_PIXEL_BUDGET")
        if self.max_upload_bytes > self.body_budget_bytes:
            raise ValueError("VISION_MAX_UPLOAD_BYTES must not exceed VISION_BODY_BUDGET_BYTES")
        if self.max_images > self.queue_size:
            raise ValueError("VISION_MAX_IMAGES must not exceed VISION_QUEUE_SIZE")
        if self.monitor_minimum > self.monitor_window:
            raise ValueError("VISION_MONITOR_MINIMUM must not exceed VISION_MONITOR_WINDOW")
        return self

    @property
    def usable_cores(self) -> int:
        return self.cores or cpus.usable_cores()

    def engine_config(self) -> EngineConfig:
        """What the engine needs of these settings."""
        return EngineConfig(
            models_dir=self.models_dir,
            limits=RequestLimits(
                max_images=self.max_images,
                max_image_bytes=self.max_upload_bytes,
                max_pixels=self.max_pixels,
                max_request_pixels=self.max_request_pixels,
            ),
            default_models=self.default_models,
            provider=self.provider,
            cores=self.usable_cores,
            threads=self.threads,
            inference_workers=self.inference_workers,
            decode_workers=self.decode_workers,
            max_batch=self.max_batch,
            max_delay_ms=self.max_delay_ms,
            queue_size=self.queue_size,
            pixel_budget=self.pixel_budget,
            warmup=self.warmup,
            poll_seconds=self.model_poll_seconds,
            max_model_bytes=self.max_model_bytes,
            follow_symlinks=self.follow_symlinks,
            decode_limits=DecodeLimits(self.decode_memory_bytes, self.decode_timeout_seconds),
            monitoring=MonitorConfig(self.monitor, self.monitor_window, self.monitor_minimum),
        )
