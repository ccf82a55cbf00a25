"""`python -m training`: a data set it cannot train on is refused in one line, before TensorFlow loads, and
leaves no run directory behind."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from PIL import Image
from probes import without

from training.cli import _parser


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("data", "task", "fragment"),
    [
        ("absent", "classify", "is not a directory; --data takes one of: 'digits'"),
        ("empty", "classify", "no data set layout found; looked for the Oxford-IIIT Pet layout"),
        ("classes", "segment", "is a folder per class, which has labels only"),
        ("digits", "detect", "the digits data set only supports the classify task"),
    ],
)
def test_data_it_cannot_train_on_is_one_line_and_leaves_nothing(
    tmp_path: Path, data: str, task: str, fragment: str
) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("cats", "dogs"):
        (tmp_path / "classes" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "classes" / name / "1.png")
    where = data if data == "digits" else str(tmp_path / data)
    finished = run_cli("train", task, "--data", where, "--run", str(tmp_path / "run"))
    assert finished.returncode == 2
    (line,) = finished.stderr.strip().splitlines()
    assert line.startswith("train: ")
    assert fragment in line
    assert not (tmp_path / "run").exists()
    assert "tensorflow" not in finished.stderr.lower()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--epochs", "0", "argument --epochs: must be at least 1, not 0"),
        ("--size", "0", "argument --size: must be at least 1, not 0"),
        ("--batch", "many", "argument --batch: 'many' is not a whole number"),
    ],
)
def test_counts_below_one_are_refused_before_tensorflow(option: str, value: str, message: str) -> None:
    finished = run_cli("train", "classify", "--data", "digits", "--run", "unused", option, value)
    assert message in one_line(finished, "python -m training train: ")


def one_line(finished: subprocess.CompletedProcess[str], command: str) -> str:
    """The single stderr line of a refused command, which never mentions TensorFlow."""
    assert finished.returncode == 2, finished.stderr
    (line,) = finished.stderr.strip().splitlines()
    assert line.startswith(command)
    assert "tensorflow" not in line.lower()
    return line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--arch", "small_cnn", "--size", "7"], "small_cnn needs --size of at least 8, not 7"),
        (["--arch", "xception", "--size", "64"], "xception needs --size of at least 71, not 64"),
        (["--arch", "nope"], "argument --arch: invalid choice: 'nope'"),
        (["--freeze", "3"], "--freeze needs --init-from"),
        (["--arch", "mobilenet", "--fine-tune-epochs", "2"], "--fine-tune-epochs needs --weights"),
        (["--unfreeze", "4"], "--unfreeze needs --fine-tune-epochs"),
        (["--weights", "imagenet"], "--weights is for the keras.applications backbones"),
        (["--arch", "resnet50", "--weights", "/nowhere.h5"], "weights file /nowhere.h5 does not exist"),
        (["--init-from", "/nowhere"], "/nowhere is not a run directory"),
        (["--rotation", "200"], "--rotation takes 0 to 180 degrees, not 200"),
        (["--no-augment", "--zoom", "0.2", "--quarter-turns"], "drop it or --quarter-turns, --zoom"),
        (["--flip", "diagonal"], "argument --flip: invalid choice: 'diagonal'"),
    ],
)
def test_impossible_runs_are_one_line_before_tensorflow(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    for name in ("cats", "dogs"):
        (tmp_path / "classes" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "classes" / name / "1.png")
    finished = run_cli(
        "train", "classify", "--data", str(tmp_path / "classes"), "--run", str(tmp_path / "run"), *args
    )
    assert fragment in one_line(
        finished, "python -m training train" if "invalid choice" in fragment else "train: "
    )
    assert not (tmp_path / "run").exists()


def test_an_architecture_of_another_task_is_one_line() -> None:
    oxford = str(REPO_ROOT / "tests" / "training" / "fixtures" / "oxford_pet")
    line = one_line(
        run_cli("train", "detect", "--data", oxford, "--run", "x", "--arch", "small_cnn"), "train: "
    )
    assert (
        "detect has no architecture 'small_cnn'; choose from grid, encoder_grid, localize, encoder_localize"
        in line
    )


def test_missing_imagenet_weights_name_the_file_and_where_it_goes(tmp_path: Path) -> None:
    args = ["--arch", "mobilenet_v2", "--size", "96", "--weights", "imagenet"]
    keras_home = {"KERAS_HOME": str(tmp_path / "keras")}
    finished = run_cli(
        "train", "classify", "--data", "digits", "--run", str(tmp_path / "run"), *args, env=keras_home
    )
    line = one_line(finished, "train: ")
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in line
    assert str(tmp_path / "keras" / "models") in line


def test_help_lists_every_architecture_with_its_smallest_size() -> None:
    finished = run_cli("train", "--help")
    assert finished.returncode == 0
    for name, size in [("lenet5", 28), ("densenet121", 32), ("xception", 71), ("localize", 32), ("unet", 8)]:
        assert any(
            line.split()[:1] == [name] and f"--size >= {size}" in line
            for line in finished.stdout.splitlines()
        )


def test_every_option_of_every_command_is_described_with_its_default() -> None:
    commands = next(action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        shown = " ".join(command.format_help().split())
        for action in command._actions:
            assert action.help, f"{name} {action.dest} has no description"
            if isinstance(action.default, int | float | Path) and not isinstance(action.default, bool):
                said = f"(default: {action.default})" in shown or "default" in action.help
                assert said, f"{name} {action.dest}"


@pytest.mark.parametrize("command", ["evaluate", "export", "visualize"])
def test_a_missing_run_directory_is_one_line(tmp_path: Path, command: str) -> None:
    extra = {"export": ["--name", "x"], "visualize": ["--image", "x.jpg"]}.get(command, [])
    args = [command, "--run", str(tmp_path / "nowhere"), *extra]
    assert "is not a run directory" in one_line(run_cli(*args), f"{command}: ")


def test_visualize_without_its_image_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "model.keras").write_bytes(b"")
    line = one_line(
        run_cli("visualize", "--run", str(run), "--image", str(tmp_path / "no.jpg")), "visualize: "
    )
    assert f"no such image: {tmp_path / 'no.jpg'}" in line


def test_export_over_an_existing_version_needs_force(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "model.keras").write_bytes(b"")
    (tmp_path / "models" / "mine" / "3").mkdir(parents=True)
    (tmp_path / "models" / "mine" / "3" / "model.onnx").write_bytes(b"kept")
    args = [
        "export",
        "--run",
        str(run),
        "--name",
        "mine",
        "--version",
        "3",
        "--models-dir",
        str(tmp_path / "models"),
    ]
    line = one_line(run_cli(*args), "export: ")
    assert "models/mine/3 exists: --force replaces that model version" in line
    assert (tmp_path / "models" / "mine" / "3" / "model.onnx").read_bytes() == b"kept"


def test_synth_into_a_data_set_needs_force_and_then_leaves_nothing_stale(tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert run_cli("synth", "--out", str(out), "--count", "6").returncode == 0
    assert len(list((out / "images").glob("*.jpg"))) == 6
    line = one_line(run_cli("synth", "--out", str(out), "--count", "3"), "synth: ")
    assert "is not empty: --force replaces the data set written there" in line
    assert len(list((out / "images").glob("*.jpg"))) == 6
    assert run_cli("synth", "--out", str(out), "--count", "3", "--seed", "9", "--force").returncode == 0
    assert len(list((out / "images").glob("*.jpg"))) == 3
    assert len(list((out / "annotations" / "xmls").glob("*.xml"))) == 3
    lines = (out / "annotations" / "list.txt").read_text().splitlines()
    stems = [line.split()[0] for line in lines if line and not line.startswith("#")]
    assert sorted(f"{stem}.jpg" for stem in stems) == sorted(p.name for p in (out / "images").glob("*.jpg"))


def test_synth_needs_two_images() -> None:
    line = one_line(run_cli("synth", "--out", "unused", "--count", "1"), "python -m training synth: ")
    assert "argument --count: must be at least 2, not 1" in line


def tensorflow_noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "cuda" in line.lower() or "absl" in line]


@pytest.mark.slow
def test_without_a_terminal_each_step_is_named_the_last_line_says_where_the_run_is_and_tensorflow_is_quiet(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = ["train", "classify", "--data", "digits", "--run", str(run), "--size", "28", "--epochs", "1"]
    finished = run_cli(*args, "--allow-useless")  # captured: stdout is no terminal
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    steps = [
        "reading and decoding digits",
        "read ",
        "training lenet5: up to 1 epochs",
        "augmentation: crops of 90 to 100 %",
        "epoch 1/1 ",
        "setting the BatchNorm statistics",
        "scoring the ",
        "drawing the curves",
    ]
    found = [next(i for i, line in enumerate(lines) if line.startswith(step)) for step in steps]
    assert found == sorted(found)
    assert lines[-1].startswith(f"done: {run}, kept epoch 1 of 1, held-out accuracy 0.")
    assert not tensorflow_noise(finished.stderr), finished.stderr


@pytest.mark.slow
def test_verbose_shows_tensorflow_start_up_noise(tmp_path: Path) -> None:
    args = ["train", "classify", "--data", "digits", "--run", str(tmp_path / "run"), "--size", "28"]
    # One epoch: what is printed is under test, not the model.
    finished = run_cli(*args, "--epochs", "1", "--allow-useless", "--verbose")
    assert finished.returncode == 0, finished.stderr
    assert tensorflow_noise(finished.stderr), finished.stderr


TRAINING_EXTRAS = ("tensorflow", "tf2onnx", "sklearn", "tqdm", "matplotlib", "keras")


@pytest.mark.parametrize("also_missing", [(), ("onnx",)])
def test_sign_runs_in_a_service_only_install_and_says_what_it_lacks(
    tmp_path: Path, also_missing: tuple[str, ...]
) -> None:
    model = tmp_path / "model.onnx"
    shutil.copy(REPO_ROOT / "models" / "digits" / "1" / "model.onnx", model)
    snippet = f"""{without(*TRAINING_EXTRAS, *also_missing)}
from training.cli import main
sys.exit(main(["sign", {str(model)!r}]))
"""
    finished = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=REPO_ROOT)
    if also_missing:
        assert finished.returncode == 2
        assert (
            finished.stderr
            == "sign: signing needs onnx, which this install lacks: pip install 'vision-service[sign]'\n"
        )
    else:
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.startswith(f"{model}: sha256 ")
