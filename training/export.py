"""Keras -> ONNX with the `vision.*` contract metadata, checked against Keras before anything is written."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import subprocess
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from tqdm import tqdm

from service.core.contract import ModelMetadata, check_tensor_shapes, parse_metadata, to_metadata_props
from service.core.model import Model
from training.architectures.custom_objects import load_run_model
from training.data.folders import images_in
from training.errors import ExportMismatchError
from training.evaluate.evaluate import DEFINITIONS, HEADLINE, evaluate_predictor, predict_all
from training.plots import reference_png
from training.reference import measure_reference
from training.signing import signed_bytes
from training.train import TrainConfig, contract_model, keras_predictor, load_task_data
from training.visualize import CAM_PICTURE, FEATURE_MAPS_PICTURE, FILTERS_PICTURE, pictures

OPSET = 17
MAX_ABS_DIFF = 1e-4
# ONNX Runtime rounds float32 differently from TensorFlow, and a net can amplify rounding: at 32 px ResNet50
# ends in 1x1 maps whose BatchNorm variances are near zero, and 2 of 13 one-epoch runs differed by more than
# 1e-4 (up to 1.9e-4). How far Keras's own outputs move when every pixel moves by one part in a million
# measures that gain (8e-6 to 4.7e-4 there, 1.2e-6 to 1.4e-5 for EfficientNetB0 at 32 px), and over those
# 19 runs ONNX differed by 0.05 to 1.5 times that move.
INPUT_NUDGE = 2**-20
NOISE_MARGIN = 8
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]  # never Softmax, ConvTranspose or the detector's decoding


def to_onnx(model: keras.Model) -> onnx.ModelProto:
    """Convert through a tf.function with a fixed input signature (the route that works with Keras 3)."""
    _inline_normalization(model)
    shape = [None, *model.inputs[0].shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return model(image, training=False)

    with _collecting_every_generation():
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=OPSET)
    return proto


@contextlib.contextmanager
def _collecting_every_generation() -> Iterator[None]:
    """tf2onnx deep-copies the graph, weights and all, before each optimiser pass, and the copies it drops sit
    in reference cycles that a collector counting objects, not bytes, reaches late: training and exporting
    ResNet50 at 32 px peaked at 10.6 GiB, Xception at 6.5. With what exists frozen out of the collector's view
    and every collection a full one, they peak at 3.0 GiB."""
    gc.collect()
    gc.freeze()
    # A full collection waits until its survivors grow by a quarter of the count the last one left: collected
    # again with the rest frozen, that count is this conversion's, not the 650,000 objects training leaves.
    gc.collect()
    previous = gc.get_threshold()
    gc.set_threshold(previous[0], 1, 1)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def _inline_normalization(model: keras.Model) -> None:
    """An adapted Normalization layer (EfficientNet's) holds its mean and variance as eager tensors, which a
    traced function captures as inputs that tf2onnx leaves unfed ("Required inputs [...normalization/Sub/y:0]
    are missing"); as numpy arrays they trace into constants."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Normalization) and layer.mean is not None:
            layer.mean, layer.variance = np.asarray(layer.mean), np.asarray(layer.variance)


def onnx_predictor(session: ort.InferenceSession) -> Any:
    names = [o.name for o in session.get_outputs()]

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {"image": images.astype(np.float32)}), strict=True))

    return predict


def session_for(proto: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def check_against_keras(proto: onnx.ModelProto, model: keras.Model, images: np.ndarray) -> float:
    """Max abs difference over all outputs on real images; raises when above `allowed_differences` or when
    the argmax of a decided prediction differs."""
    expected = predict_all(keras_predictor(model), images)
    actual = predict_all(onnx_predictor(session_for(proto)), images)
    allowed = allowed_differences(model, images, expected)
    worst = 0.0
    for role, want in expected.items():
        got = actual[role]
        diff = float(np.max(np.abs(got - want)))
        worst = max(worst, diff)
        if not diff <= allowed[role]:  # NaN included
            raise ExportMismatchError(f"{role}: ONNX differs from Keras by {diff:.2e} > {allowed[role]:.2e}")
        if role.endswith("probabilities") and _argmax_differs(want, got, allowed[role]):
            raise ExportMismatchError(f"{role}: ONNX and Keras disagree on the argmax")
    return worst


def allowed_differences(
    model: keras.Model, images: np.ndarray, expected: dict[str, np.ndarray]
) -> dict[str, float]:
    """Per output, MAX_ABS_DIFF or NOISE_MARGIN times how far Keras moves under INPUT_NUDGE, if larger."""
    nudged = predict_all(keras_predictor(model), images * np.float32(1 + INPUT_NUDGE))
    return {
        role: max(MAX_ABS_DIFF, NOISE_MARGIN * float(np.max(np.abs(nudged[role] - want))))
        for role, want in expected.items()
    }


def _argmax_differs(want: np.ndarray, got: np.ndarray, allowed: float) -> bool:
    """Whether the top class differs where Keras's top two are further apart than both may move."""
    top_two = np.sort(want, axis=-1)[..., -2:]
    decided = top_two[..., 1] - top_two[..., 0] > 2 * allowed
    return bool(np.any((got.argmax(-1) != want.argmax(-1)) & decided))


def quantize(proto: onnx.ModelProto, calibration: np.ndarray) -> onnx.ModelProto:
    """Static QDQ INT8 (per-channel weights) of every Conv/MatMul/Gemm but the first, calibrated on training
    images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": calibration[i : i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, target = Path(tmp, "fp32.onnx"), Path(tmp, "prep.onnx"), Path(tmp, "int8.onnx")
        onnx.save(proto, source)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        # The first layer sees the raw picture. Quantised, it cost one classifier 1.4 points of held-out
        # accuracy (0 kept in FP32); over three classifier runs the loss went from 0.2-1.4 points to 0-0.4.
        first = next(node.name for node in onnx.load(prepared).graph.node if node.op_type in QUANTIZED_OPS)
        quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_exclude=[first],
        )
        return onnx.load(target)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def build_metadata(
    name: str, version: int, run: dict[str, Any], metrics: dict[str, Any], proto: onnx.ModelProto
) -> ModelMetadata:
    config = run["config"]
    return ModelMetadata(
        schema_version="1",
        task=config["task"],
        name=name,
        version=version,
        labels=tuple(run["labels"]),
        input={
            "name": "image",
            "height": config["size"],
            "width": config["size"],
            "channels": 1 if config["data"] == "digits" else 3,
        },
        resize="stretch",
        outputs={o.name: o.name for o in proto.graph.output},
        metrics=metrics,
        trained={
            "dataset": run["dataset"],
            "epochs": run["epochs_run"],
            "image_size": [config["size"], config["size"]],
            "architecture": config["arch"],
            "date": dt.date.today().isoformat(),
            "git_commit": git_commit(),
            "seed": config["seed"],
            "train_images": run["train_images"],
        },
    )


def attach_and_validate(proto: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Write the metadata into the proto and re-read it through the service's own checks."""
    del proto.metadata_props[:]
    for key, value in to_metadata_props(metadata).items():
        proto.metadata_props.add(key=key, value=value)
    parsed = parse_metadata({p.key: p.value for p in proto.metadata_props})
    session = session_for(proto)
    check_tensor_shapes(
        parsed,
        {i.name: i.shape for i in session.get_inputs()},
        {o.name: o.shape for o in session.get_outputs()},
    )


def with_reference(
    proto: onnx.ModelProto, metadata: ModelMetadata, uploads: Sequence[Path | bytes], source: str
) -> ModelMetadata:
    """`metadata` with the reference of the model in `proto` over `uploads` (docs/model-contract.md)."""
    model = Model(metadata, Path(metadata.name), session_for(proto), "cpu")
    return metadata.model_copy(update={"reference": measure_reference(model, uploads, source)})


REFERENCE_PICTURE = "reference.png"
PICTURES = ("curves.png", "samples.png", "confusion.png", "augment.png")


def export_run(
    run_dir: Path,
    models_dir: Path,
    name: str,
    version: int,
    int8: bool = False,
    replace: bool = False,
    reference: Path | None = None,
) -> Path:
    """Export a run to models_dir/name/version/model.onnx plus its model card; returns the ONNX path. Its
    drift reference is measured on the images under the folder `reference`, or else on the held-out split.

    An existing version is refused unless `replace`; then each file is replaced in one rename, so a service
    polling the repository never reads half a model.
    """
    target = models_dir / name / str(version)
    if target.exists() and not replace:
        raise FileExistsError(f"{target} exists")
    steps = tqdm(total=5 + int8, desc="export", unit="step", leave=False, disable=None)
    run = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = TrainConfig.saved(run["config"])
    trained = load_run_model(run_dir)
    model = contract_model(trained, config.task, heatmap=True)
    data = load_task_data(config)
    _step(steps, "converting to ONNX")
    proto = to_onnx(model)
    _step(steps, "checking against Keras")
    metrics["onnx_max_abs_diff"] = check_against_keras(proto, model, data.test.images[:32])
    if int8:
        _step(steps, "quantising")
        proto, metrics = _quantized(proto, config.task, data, metrics)
    _step(steps, "checking the contract")
    metadata = build_metadata(name, version, run, metrics, proto)
    attach_and_validate(proto, metadata)
    _step(steps, "measuring the drift reference")
    if reference is None:
        metadata = with_reference(proto, metadata, data.held_out, f"held-out split of {data.dataset_name}")
    else:
        metadata = with_reference(proto, metadata, images_in(reference), str(reference))
    attach_and_validate(proto, metadata)
    _step(steps, "writing")
    drawn = (
        pictures(trained, _upload_bytes(data.held_out[0]), metadata.labels)
        if config.task == "classify" and data.held_out
        else {}
    )
    files = {
        "model.onnx": signed_bytes(proto),
        "README.md": model_card(metadata, run, int8, drawn).encode(),
        REFERENCE_PICTURE: reference_png(metadata.reference, metadata.labels),
        **drawn,
    }
    files.update({p: (run_dir / p).read_bytes() for p in PICTURES if (run_dir / p).exists()})
    write_version(target, files)
    steps.close()
    return target / "model.onnx"


def _upload_bytes(upload: Path | bytes) -> bytes:
    return upload if isinstance(upload, bytes) else upload.read_bytes()


def _step(bar: tqdm, what: str) -> None:
    bar.update(1)
    bar.set_postfix_str(what)


def write_version(target: Path, files: dict[str, bytes]) -> None:
    """Each file staged beside its name and renamed over it; files an earlier export left go."""
    target.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        staged = target / f".{name}.partial"
        staged.write_bytes(content)
        staged.replace(target / name)
    for stale in target.iterdir():
        if stale.name not in files and stale.is_file():
            stale.unlink()


def _quantized(
    proto: onnx.ModelProto, task: str, data: Any, metrics: dict[str, Any]
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """INT8 model and its own held-out metrics, with the change against FP32 recorded."""
    if task != "classify":
        raise ValueError(
            "INT8 export is offered for classifiers only (Softmax/ConvTranspose-heavy heads lose too much)"
        )
    calibration = data.train.images[np.random.default_rng(0).permutation(len(data.train))[:256]]
    quantized = quantize(proto, calibration)
    labels = tuple(data.labels)
    fp32 = evaluate_predictor(onnx_predictor(session_for(proto)), task, data.test, labels)
    int8 = evaluate_predictor(onnx_predictor(session_for(quantized)), task, data.test, labels)
    updated = {key: value for key, value in metrics.items() if key != "onnx_max_abs_diff"}
    updated.update(
        accuracy=int8["accuracy"],
        fp32_accuracy=fp32["accuracy"],
        accuracy_change=int8["accuracy"] - fp32["accuracy"],
        quantization="static QDQ INT8, per-channel weights, " + "/".join(QUANTIZED_OPS) + " but the first",
        calibration_images=len(calibration),
    )
    return quantized, updated


def _early_stopping(run: dict[str, Any]) -> str:
    config = run["config"]
    text = f"early stopping, patience {config['patience']}"
    if config.get("early_stop_after"):
        text += f", judged from epoch {config['early_stop_after'] + 1}"
    if "weights_epoch" in run:
        text += f"; weights of epoch {run['weights_epoch']}"
    return text


def model_card(metadata: ModelMetadata, run: dict[str, Any], int8: bool, drawn: Collection[str] = ()) -> str:
    """README.md beside the model: what it is, how it scored on the held-out split, how to rebuild it."""
    config, spec, found = run["config"], metadata.input, metadata.metrics
    rows = "\n".join(
        f"| {key} | {_value(value)} | {DEFINITIONS.get(key, '')} |"
        for key, value in found.items()
        if not isinstance(value, dict | list)
    )
    warnings = "".join(f"\n- {warning}" for warning in found.get("warnings", []))
    caution = f"\n**Warning: this model is of no use.**{warnings}\n" if warnings else ""
    headline = ", ".join(f"{k} {found[k]:.3f}" for k in HEADLINE[metadata.task] if k in found)
    quantised = " INT8 (static QDQ) quantisation of the FP32 model." if int8 else ""
    labels = ", ".join(f"`{label}`" for label in metadata.labels)
    outputs = ", ".join(f"`{role}`" for role in metadata.outputs)
    training = (
        f"Architecture `{config['arch']}`, {_count(run['epochs_run'], 'epoch')} ({_early_stopping(run)}) on "
        f"{run['train_images']} images of `{run['dataset']}` ({run['val_images']} "
        f"for validation), seed {config['seed']}, batch {config['batch']}, Adam with cosine decay from "
        f"{config['learning_rate']}, {run['train_seconds']} s on CPU."
    )
    if run.get("augmentation") == "none":
        training += " Training images not augmented."
    elif "augmentation" in run:
        training += f" Training images augmented with {run['augmentation']}."
    if config.get("init_from"):
        freeze = config.get("freeze")
        frozen = f", its first {freeze} layers with weights kept fixed" if freeze else ""
        training += f" Started from the run `{config['init_from']}`{frozen}."
    if config.get("weights"):
        training += f" Base weights: `{config['weights']}`."
    if config.get("fine_tune_epochs"):
        top = config.get("unfreeze")
        training += (
            f" Two phases: the head alone with the base frozen, then {config['fine_tune_epochs']} epochs "
            f"fine-tuning {f'the top {top} layers' if top else 'all'} of the base, from a learning rate of "
            f"{TrainConfig.saved(config).tune_lr:g}."
        )
    command = config.get("command")
    rebuild = (
        f"Trained with:\n\n```\n{command}\n```"
        if command
        else "Rebuild with `make models` (fixed seeds; the Makefile lists this model's exact commands)."
    )
    confusion = (
        "\n## Confusion matrix (held-out images)\n\n![confusion matrix](confusion.png)\n"
        if metadata.task == "classify"
        else ""
    )
    inside = _what_it_sees(drawn)
    augmented = (
        "\n## Augmentation (one training image under 8 draws)\n\n![augmentation](augment.png)\n"
        if run.get("augmentation", "none") != "none"  # a run draws augment.png when it augments
        else ""
    )
    reference = metadata.reference
    drift = (
        f"\n## Drift reference ({reference.images} images of {reference.source})\n\n"
        f"![drift reference]({REFERENCE_PICTURE})\n\nWhat the service compares the images it answers with, "
        f"signal by signal (`GET /models/{metadata.name}/monitor`, docs/model-contract.md). An image whose "
        f"confidence is under {reference.low_confidence:.3g} is answered `unfamiliar`.\n"
        if reference is not None
        else ""
    )
    return f"""# {metadata.name} (version {metadata.version})

Task `{metadata.task}`; {headline} on the held-out `test` split ({found.get("images", "?")} images),
which training and early stopping never saw.{quantised}
{caution}
- Labels: {labels}
- Input `{spec.name}`: {spec.height}x{spec.width}x{spec.channels} {spec.layout} float32, raw 0..255 pixels,
  `{metadata.resize}` resize; rescaling happens inside the graph.
- Outputs: {outputs}
- {training}

## Held-out metrics

| metric | value | what it is |
| --- | --- | --- |
{rows}

{_nested(found)}
## Training curves

![training curves](curves.png)

The dotted line marks the epoch whose weights the model keeps.

## Sample predictions (held-out images)

![sample predictions](samples.png)
{confusion}{inside}{augmented}{drift}
{rebuild}
"""


def _what_it_sees(drawn: Collection[str]) -> str:
    """The card's section on the pictures of training/visualize.py that export drew, if any."""
    parts = {
        FILTERS_PICTURE: f"The first layer's filters:\n\n![first-layer filters]({FILTERS_PICTURE})\n",
        FEATURE_MAPS_PICTURE: "The feature maps of the last layer at each resolution, the channels that "
        f"respond most first:\n\n![feature maps]({FEATURE_MAPS_PICTURE})\n",
        CAM_PICTURE: "Where it saw the class (`POST /explain` draws the same map over any image):\n\n"
        f"![class activation map]({CAM_PICTURE})\n",
    }
    shown = [text for name, text in parts.items() if name in drawn]
    return "\n## What it sees (one held-out image)\n\n" + "\n".join(shown) if shown else ""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _nested(metrics: dict[str, Any]) -> str:
    """Each per-class (or paired) metric on a line of its own, its definition after it."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            cells = ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()
            )
            definition = f" ({DEFINITIONS[key]})" if key in DEFINITIONS else ""
            parts.append(f"- {key}: {cells}{definition}\n")
    return "".join(parts)
