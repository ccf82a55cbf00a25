"""The model repository: scan `<name>/<version>/model.onnx`, validate each contract, pick what serves.

A reload is load-then-swap (service.core.reload runs it): every new or changed file is opened, checked and
warmed up beside what serves, then the whole set is swapped in one step on the event loop. A file that
fails keeps its old version serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from service.api.terms import DefaultReason, Task
from service.core.batching import MicroBatcher
from service.core.contract import TASKS, ContractError, ModelMetadata
from service.core.errors import ModelNotFoundError, WrongTaskError
from service.core.model import Model, open_model
from service.core.monitor import DriftMonitor, MonitorConfig
from service.core.runtime import ExecutionPlan
from service.observability import metrics

logger = logging.getLogger("vision.repository")

MODEL_FILE = "model.onnx"
DEFAULT_MAX_MODEL_BYTES = 2 * 1024**3
_VERSION_DIR = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass(frozen=True)
class BatchingConfig:
    """How each model's micro-batcher collects work."""

    max_batch: int
    max_delay: float
    queue_size: int


@dataclass(frozen=True)
class DefaultModel:
    """A task's default model, and why: VISION_DEFAULT_MODELS names it, or it came first by name when the
    task needed one; it then stays the default across reloads until it leaves."""

    name: str
    reason: DefaultReason


# What tells a changed file from the one loaded: its inode, size and modification time.
FileStamp = tuple[int, int, int]


@dataclass
class LoadedModel:
    """A model version that serves: the opened file, the micro-batcher in front of it, and the stamp of the
    file it was read from."""

    model: Model
    batcher: MicroBatcher
    stamp: FileStamp
    monitor: DriftMonitor | None  # None with monitoring off
    _users: int = field(default=0, init=False, repr=False)
    _unused: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    @property
    def metadata(self) -> ModelMetadata:
        return self.model.metadata

    @property
    def key(self) -> str:
        return self.model.key

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Count a call on this version for its whole length, so a reload retires it only when idle."""
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if not self._users:
                self._unused.set()

    async def retire(self) -> None:
        """Stop the batcher once no call uses this version any longer."""
        while self._users:
            self._unused.clear()
            await self._unused.wait()
        await self.batcher.stop()
        if self.monitor is not None:
            self.monitor.close()


@dataclass(frozen=True)
class LoadFailure:
    """A model directory that could not be served, and why (shown in logs and `/models`)."""

    name: str
    version: str
    key: str
    message: str


@dataclass(frozen=True)
class ModelState:
    """One version in the repository index: served, or refused with the reason (Triton's index entry)."""

    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str = ""


@dataclass
class ReloadPlan:
    """What a scan found, opened and warmed up in a worker thread, ready to be swapped in on the loop."""

    names: frozenset[str] | None  # the models rescanned; None for all
    fresh: list[LoadedModel]
    on_disk: set[tuple[str, int]]
    failures: list[LoadFailure]


@dataclass(frozen=True)
class Readiness:
    """Whether the engine takes traffic, why not, and which model versions serve."""

    status: Literal["ok", "loading", "unavailable"]
    reason: str | None = None
    models: list[str] = field(default_factory=list)


@dataclass
class ModelRepository:
    """Every model version found under the repository; loaded ones serve, failed ones are reported."""

    root: Path
    plan: ExecutionPlan
    run_slots: threading.Semaphore  # runs at once across every model: the plan's concurrent runs
    batching: BatchingConfig
    preferred_defaults: Mapping[str, str]
    monitoring: MonitorConfig = field(default_factory=MonitorConfig)
    # A file is read whole into memory to be checked and run: one larger than this is refused unread.
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    # Whether a symlink may lead out of the repository (to a file nobody put under the served tree).
    follow_symlinks: bool = False
    models: dict[str, dict[int, LoadedModel]] = field(default_factory=dict)
    failures: list[LoadFailure] = field(default_factory=list)
    defaults: dict[str, DefaultModel] = field(default_factory=dict)
    unloaded: set[str] = field(default_factory=set)
    _started: bool = field(default=False, init=False)
    _refused: dict[Path, tuple[FileStamp, LoadFailure]] = field(default_factory=dict, init=False)

    def load_all(self) -> None:
        """Open a session for every candidate file; blocking, so call it from a worker thread."""
        self.swap(self.plan_reload(None, warm_up=False))

    def plan_reload(self, names: Iterable[str] | None, *, warm_up: bool) -> ReloadPlan:
        """Open every new or changed file of `names` (None: all but the unloaded); blocking, so call it
        from a worker thread."""
        wanted = None if names is None else frozenset(names)
        plan = ReloadPlan(wanted, [], set(), [])
        if not self.root.is_dir():
            plan.failures.append(LoadFailure("*", "*", "models_dir", f"{self.root} is not a directory"))
            logger.error("model repository %s is not a directory", self.root)
            return plan
        for name, version, path in self._candidates(plan.failures):
            if (wanted is None and name in self.unloaded) or (wanted is not None and name not in wanted):
                continue
            loaded = self._load_if_changed(name, version, path, plan.failures)
            if loaded is None:
                continue
            plan.on_disk.add((name, loaded.metadata.version))
            if loaded is not self._serving(name, loaded.metadata.version):
                if warm_up:
                    loaded.model.warm_up()
                plan.fresh.append(loaded)
        return plan

    def swap(self, plan: ReloadPlan) -> list[LoadedModel]:
        """Put a plan in service in one step; returns the versions it replaced or removed, to retire."""
        names = plan.names
        if names is not None:
            self.unloaded -= names  # loading a model by name brings it back after an unload
        models = {name: dict(versions) for name, versions in self.models.items()}
        retired: list[LoadedModel] = []
        for name, versions in models.items():
            if names is not None and name not in names:
                continue
            if names is None and name in self.unloaded:
                continue
            for version in [v for v in versions if (name, v) not in plan.on_disk]:
                retired.append(versions.pop(version))
        for model in plan.fresh:
            versions = models.setdefault(model.metadata.name, {})
            if model.metadata.version in versions:
                retired.append(versions[model.metadata.version])
            versions[model.metadata.version] = model
            if self._started:
                model.batcher.start()
        kept = [f for f in self.failures if names is not None and f.name not in names and f.name != "*"]
        self.models = {name: versions for name, versions in models.items() if versions}
        self.failures = kept + plan.failures
        self.defaults = self._choose_defaults()
        self._publish_metrics()
        return retired

    def unload(self, name: str) -> list[LoadedModel]:
        """Take every version of `name` out of service until it is loaded again; returns them to retire."""
        self.unloaded.add(name)
        retired = list(self.models.pop(name, {}).values())
        self.defaults = self._choose_defaults()
        self._publish_metrics()
        return retired

    def index(self) -> list[ModelState]:
        """Every version served or refused, by name and version."""
        states = [
            ModelState(model.metadata.name, str(model.metadata.version), "READY") for model in self.loaded()
        ]
        states += [
            ModelState(f.name, f.version, "UNAVAILABLE", f"{f.key}: {f.message}") for f in self.failures
        ]
        return sorted(states, key=lambda state: (state.name, state.version))

    def _serving(self, name: str, version: int) -> LoadedModel | None:
        return self.models.get(name, {}).get(version)

    def _load_if_changed(
        self, name: str, version: str, path: Path, failures: list[LoadFailure]
    ) -> LoadedModel | None:
        """The version serving if its file is unchanged, else the file opened anew; None when refused."""
        serving = self._serving(name, int(version)) if _VERSION_DIR.match(version) else None
        try:
            stamp = _stamp_of(path)
        except OSError as exc:
            failures.append(self._fail(name, version, MODEL_FILE, f"cannot be read: {exc.strerror}"))
            return serving
        if serving is not None and serving.stamp == stamp:
            return serving
        refused = self._refused.get(path)
        if refused is not None and refused[0] == stamp:
            failures.append(refused[1])  # the same file as last time: refused again without a reopen
            return serving
        try:
            loaded = self._open(name, version, path, stamp)
        except ContractError as exc:
            failure = self._fail(name, version, exc.key, exc.message)
        except OSError as exc:
            failure = self._fail(name, version, MODEL_FILE, f"cannot be read: {exc.strerror}")
        except Exception as exc:  # onnxruntime raises bare RuntimeError-like types for broken files.
            failure = self._fail(name, version, MODEL_FILE, f"cannot be loaded: {exc}")
        else:
            logger.info(
                "loaded %s (%s, %d labels, input %dx%dx%d) on %s",
                loaded.key,
                loaded.metadata.task,
                len(loaded.metadata.labels),
                loaded.metadata.input.height,
                loaded.metadata.input.width,
                loaded.metadata.input.channels,
                loaded.model.device,
            )
            self._refused.pop(path, None)
            return loaded
        self._refused[path] = (stamp, failure)
        failures.append(failure)
        # A refused file leaves the version it would have replaced serving.
        return serving

    def _publish_metrics(self) -> None:
        metrics.set_models_loaded(
            (loaded.metadata.name, loaded.metadata.version, loaded.metadata.task, loaded.model.device)
            for loaded in self.loaded()
        )
        metrics.set_model_load_failures(len(self.failures))

    def _open(self, name: str, version: str, path: Path, stamp: FileStamp) -> LoadedModel:
        size = stamp[1]
        if size > self.max_model_bytes:
            raise ContractError(
                MODEL_FILE, f"is {size} bytes, over VISION_MAX_MODEL_BYTES ({self.max_model_bytes}): not read"
            )
        if not _VERSION_DIR.match(version):
            raise ContractError("vision.version", f"directory {version!r} is not a positive integer version")
        opened = open_model(path, self.plan)
        metadata = opened.metadata
        if metadata.name != name:
            raise ContractError("vision.name", f"{metadata.name!r} does not match its directory {name!r}")
        if metadata.version != int(version):
            raise ContractError(
                "vision.version", f"{metadata.version} does not match its directory {version}"
            )
        return LoadedModel(opened, self._batcher_for(opened), stamp, self._monitor_for(metadata))

    def _monitor_for(self, metadata: ModelMetadata) -> DriftMonitor | None:
        if not self.monitoring.enabled:
            return None
        return DriftMonitor(metadata, self.monitoring)

    def _batcher_for(self, model: Model) -> MicroBatcher:
        key = model.key
        return MicroBatcher(
            key,
            model.run,
            self.run_slots,
            max_batch=self.batching.max_batch,
            max_delay=self.batching.max_delay,
            queue_size=self.batching.queue_size,
            concurrency=self.plan.concurrent_runs,
            on_batch=lambda size: metrics.observe_batch(key, size),
            on_queue_depth=lambda depth: metrics.set_queue_depth(key, depth),
        )

    def _candidates(self, failures: list[LoadFailure]) -> Iterator[tuple[str, str, Path]]:
        """Each `<name>/<version>/model.onnx` under the root; a directory that cannot be read, or a link
        out of the repository (unless followed on purpose), is a failure and the scan goes on."""
        root = self.root.resolve()
        for model_dir in self._subdirectories(self.root, failures, "*", "*"):
            for version_dir in self._subdirectories(model_dir, failures, model_dir.name, "*"):
                name, version = model_dir.name, version_dir.name
                path = version_dir / MODEL_FILE
                try:
                    if not path.is_file():
                        continue
                    inside = path.resolve().is_relative_to(root)
                except OSError as exc:
                    failures.append(self._fail(name, version, "directory", f"cannot be read: {exc.strerror}"))
                    continue
                if not inside and not self.follow_symlinks:
                    message = "is a link out of the repository (VISION_FOLLOW_SYMLINKS=true serves it)"
                    failures.append(self._fail(name, version, MODEL_FILE, message))
                    continue
                yield name, version, path

    def _subdirectories(
        self, parent: Path, failures: list[LoadFailure], name: str, version: str
    ) -> list[Path]:
        """The visible directories in `parent`, sorted; none, and a failure, when it cannot be read."""
        try:
            return sorted(
                path for path in parent.iterdir() if path.is_dir() and not path.name.startswith(".")
            )
        except OSError as exc:
            key = "models_dir" if name == "*" else "directory"
            failures.append(self._fail(name, version, key, f"cannot be read: {exc.strerror}"))
            return []

    def _fail(self, name: str, version: str, key: str, message: str) -> LoadFailure:
        logger.error("refused model %s/%s: %s: %s", name, version, key, message)
        return LoadFailure(name, version, key, message)

    def _choose_defaults(self) -> dict[str, DefaultModel]:
        defaults: dict[str, DefaultModel] = {}
        for task in TASKS:
            choice = self._default_for(task)
            if choice is not None:
                defaults[task] = choice
            self._log_default_change(task, self.defaults.get(task), choice)
        return defaults

    def _default_for(self, task: Task) -> DefaultModel | None:
        preferred = self.preferred_defaults.get(task)
        if preferred is not None and self._serves(preferred, task):
            return DefaultModel(preferred, "configured")
        if preferred is not None and self._failed(preferred):
            return None  # The operator's choice is broken: readiness reports it instead of serving another.
        current = self.defaults.get(task)
        if current is not None and current.reason == "first_by_name" and self._serves(current.name, task):
            return current  # A model added or reloaded beside it never takes its place unasked.
        same_task = sorted(name for name in self.models if self._serves(name, task))
        return DefaultModel(same_task[0], "first_by_name") if same_task else None

    def _serves(self, name: str, task: Task) -> bool:
        return name in self.models and self.latest(name).metadata.task == task

    def _log_default_change(
        self, task: Task, before: DefaultModel | None, after: DefaultModel | None
    ) -> None:
        if before == after:
            return
        if after is None:
            logger.warning("no default %s model: calls must name one", task)
        elif after.reason == "configured":
            logger.info("default %s model: %r, as VISION_DEFAULT_MODELS names it", task, after.name)
        else:
            logger.info(
                "default %s model: %r, first by name of the %s models; VISION_DEFAULT_MODELS names none",
                task,
                after.name,
                task,
            )

    def _failed(self, name: str) -> bool:
        return any(failure.name == name for failure in self.failures) and name not in self.models

    def loaded(self) -> Iterator[LoadedModel]:
        for name in sorted(self.models):
            versions = self.models[name]
            for version in sorted(versions):
                yield versions[version]

    def latest(self, name: str) -> LoadedModel:
        versions = self.models[name]
        return versions[max(versions)]

    def resolve(self, task: Task, name: str | None, version: int | None) -> LoadedModel:
        """The model a call asks for (or the task's default), or a ModelNotFound/WrongTask that says why."""
        if name is None:
            if task not in self.defaults:
                raise ModelNotFoundError(f"no {task} model is loaded", detail={"task": task})
            name = self.defaults[task].name
        model = self.find(name, version)
        if model.metadata.task != task:
            raise WrongTaskError(
                f"model {model.key} is a {model.metadata.task} model, not {task}",
                detail={"model": model.metadata.name, "task": model.metadata.task, "endpoint": task},
            )
        return model

    def find(self, name: str, version: int | None = None) -> LoadedModel:
        if name not in self.models:
            raise ModelNotFoundError(f"no model named {name!r}", detail={"available": sorted(self.models)})
        if version is None:
            return self.latest(name)
        versions = self.models[name]
        if version not in versions:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version}", detail={"versions": sorted(versions)}
            )
        return versions[version]

    def not_ready_reason(self) -> str | None:
        """Why the service cannot take traffic yet, or None once every default model is loaded."""
        if not self.models:
            return "no model is loaded"
        broken = [
            f"default {task} model {name!r} failed to load"
            for task, name in self.preferred_defaults.items()
            if task not in self.defaults and self._failed(name)
        ]
        return "; ".join(broken) or None

    def readiness(self) -> Readiness:
        loaded = [model.key for model in self.loaded()]
        reason = self.not_ready_reason()
        return Readiness("unavailable" if reason else "ok", reason, loaded)

    def start(self) -> None:
        self._started = True
        for model in self.loaded():
            model.batcher.start()

    async def stop(self) -> None:
        self._started = False
        for model in self.loaded():
            await model.batcher.stop()

    def warm_up(self) -> None:
        """One run per model so the first request does not pay for lazy allocation."""
        for loaded in self.loaded():
            loaded.model.warm_up()


def _stamp_of(path: Path) -> FileStamp:
    status = os.stat(path)
    return status.st_ino, status.st_size, status.st_mtime_ns
