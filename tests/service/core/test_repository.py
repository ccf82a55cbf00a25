"""The model repository: which files serve, which are refused and why, and how requests pick a version."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx_models
import pytest
from unprivileged import read_as_nobody

from service.core.errors import ModelNotFoundError, WrongTaskError
from service.core.repository import BatchingConfig, DefaultModel, ModelRepository
from service.core.runtime import plan_execution


def registry_for(
    root: Path, defaults: dict[str, str] | None = None, *, follow_symlinks: bool = False
) -> ModelRepository:
    registry = ModelRepository(
        root=root,
        plan=plan_execution("cpu", cores=2, threads=1, workers=1),
        run_slots=threading.BoundedSemaphore(1),
        batching=BatchingConfig(max_batch=4, max_delay=0.001, queue_size=8),
        preferred_defaults=defaults or {},
        follow_symlinks=follow_symlinks,
    )
    registry.load_all()
    return registry


def test_highest_version_unless_named(test_models_dir: Path) -> None:
    registry = registry_for(test_models_dir, {"classify": "colours"})
    assert registry.resolve("classify", None, None).key == "colours:2"
    assert registry.resolve("classify", "colours", 1).key == "colours:1"
    assert registry.resolve("classify", "brightness", None).key == "brightness:1"


def test_resolve_errors(test_models_dir: Path) -> None:
    registry = registry_for(test_models_dir, {"classify": "colours"})
    with pytest.raises(ModelNotFoundError):
        registry.resolve("classify", "nope", None)
    with pytest.raises(ModelNotFoundError):
        registry.resolve("classify", "colours", 3)
    with pytest.raises(WrongTaskError):
        registry.resolve("detect", "colours", None)


def test_refusals_name_the_key(tmp_path: Path) -> None:
    onnx_models.colour_classifier(tmp_path)
    onnx_models.misnamed_model(tmp_path)
    onnx_models.misshapen_model(tmp_path)
    wrong_version = onnx_models.colour_classifier(tmp_path, name="versioned", version=3)
    wrong_version.parent.rename(tmp_path / "versioned" / "4")
    not_a_version = onnx_models.colour_classifier(tmp_path, name="lettered", version=1)
    not_a_version.parent.rename(tmp_path / "lettered" / "latest")
    garbage = tmp_path / "garbage" / "1" / "model.onnx"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not onnx")

    registry = registry_for(tmp_path)
    refused = {failure.name: failure.key for failure in registry.failures}
    assert refused == {
        "misnamed": "vision.name",
        "misshapen": "vision.input",
        "versioned": "vision.version",
        "lettered": "vision.version",
        "garbage": "model.onnx",
    }
    assert [model.key for model in registry.loaded()] == ["colours:1"]
    assert registry.defaults == {"classify": DefaultModel("colours", "first_by_name")}


def test_a_default_nobody_configured_stays_across_reloads_until_it_leaves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    onnx_models.colour_classifier(tmp_path, name="zebra")
    caplog.set_level(logging.INFO, "vision.repository")
    registry = registry_for(tmp_path)
    assert registry.defaults["classify"] == DefaultModel("zebra", "first_by_name")
    assert "default classify model: 'zebra', first by name" in caplog.text

    caplog.clear()
    onnx_models.colour_classifier(tmp_path, name="apple")
    registry.load_all()
    assert registry.resolve("classify", None, None).key == "zebra:1", "a newcomer first by name took over"
    assert "default classify" not in caplog.text

    registry.unload("zebra")
    assert registry.defaults["classify"] == DefaultModel("apple", "first_by_name")
    assert "default classify model: 'apple'" in caplog.text


def test_a_configured_default_says_so_and_comes_back_when_loaded_again(tmp_path: Path) -> None:
    onnx_models.colour_classifier(tmp_path, name="zebra")
    onnx_models.colour_classifier(tmp_path, name="apple")
    registry = registry_for(tmp_path, {"classify": "zebra"})
    assert registry.defaults["classify"] == DefaultModel("zebra", "configured")
    registry.unload("zebra")
    assert registry.defaults["classify"] == DefaultModel("apple", "first_by_name")
    registry.swap(registry.plan_reload(["zebra"], warm_up=False))
    assert registry.defaults["classify"] == DefaultModel("zebra", "configured")


def test_no_default_for_a_task_without_models(tmp_path: Path) -> None:
    onnx_models.threshold_segmenter(tmp_path)
    registry = registry_for(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no classify model"):
        registry.resolve("classify", None, None)
    assert registry.not_ready_reason() is None


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    registry = registry_for(tmp_path / "absent")
    assert registry.failures[0].key == "models_dir"
    assert registry.not_ready_reason() == "no model is loaded"


def test_a_file_changed_after_export_is_refused_and_reported(tmp_path: Path) -> None:
    path = onnx_models.colour_classifier(tmp_path)
    data = bytearray(path.read_bytes())
    weight = data.find(np.float32(0.1).tobytes())  # the classifier's scale constant
    data[weight : weight + 4] = np.float32(10.0).tobytes()
    path.write_bytes(bytes(data))
    registry = registry_for(tmp_path, {"classify": "colours"})
    (failure,) = registry.failures
    assert (failure.name, failure.key) == ("colours", "vision.sha256")
    assert "changed after export" in failure.message
    assert registry.not_ready_reason() == "no model is loaded"


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory that every user may enter (pytest's own are the test user's alone)."""
    path = Path(tempfile.mkdtemp())
    path.chmod(0o755)
    yield path
    for inner in path.rglob("*"):
        inner.chmod(0o755 if inner.is_dir() else 0o644)
    shutil.rmtree(path)


def test_unreadable_directories_are_listed_failures_and_the_rest_serves(open_dir: Path) -> None:
    onnx_models.colour_classifier(open_dir)
    lost = open_dir / "lost+found"  # the root-only folder at the top of an ext4 volume
    lost.mkdir(mode=0o700)
    unreadable_version = onnx_models.brightness_classifier(open_dir).parent
    unreadable_version.chmod(0o000)
    if os.geteuid() != 0:
        lost.chmod(0o000)
    registry = read_as_nobody(lambda: registry_for(open_dir))
    assert [model.key for model in registry.loaded()] == ["colours:1"]
    assert sorted([f.name, f.version, f.key, f.message] for f in registry.failures) == [
        ["brightness", "1", "directory", "cannot be read: Permission denied"],
        ["lost+found", "*", "directory", "cannot be read: Permission denied"],
    ]


def test_a_model_file_over_the_byte_limit_is_refused_unread(tmp_path: Path) -> None:
    onnx_models.colour_classifier(tmp_path)
    huge = tmp_path / "huge" / "1" / "model.onnx"
    huge.parent.mkdir(parents=True)
    with huge.open("wb") as sparse:  # 3 GB on paper, no disk blocks
        sparse.truncate(3 * 1024**3)
    registry = registry_for(tmp_path)
    assert [model.key for model in registry.loaded()] == ["colours:1"]
    (failure,) = registry.failures
    assert (failure.name, failure.key) == ("huge", "model.onnx")
    assert failure.message == f"is {3 * 1024**3} bytes, over VISION_MAX_MODEL_BYTES ({2 * 1024**3}): not read"


def test_links_out_of_the_repository_are_refused_unless_followed(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    onnx_models.colour_classifier(root)
    onnx_models.brightness_classifier(elsewhere)
    (root / "brightness").symlink_to(elsewhere / "brightness")
    (root / "colours" / "2").symlink_to(root / "colours" / "1")  # a link that stays inside serves
    refused = registry_for(root)
    assert [model.key for model in refused.loaded()] == ["colours:1"]
    assert [(f.name, f.key) for f in refused.failures] == [
        ("brightness", "model.onnx"),
        ("colours", "vision.version"),
    ]
    assert "link out of the repository" in refused.failures[0].message
    followed = registry_for(root, follow_symlinks=True)
    assert [model.key for model in followed.loaded()] == ["brightness:1", "colours:1"]
