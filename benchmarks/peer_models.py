"""What every framework peer does per image, the same way: Pillow decode with draft mode, resize, one batched
`session.run` of the bundled ONNX file, then top-k / NMS / argmax + PNG.

Imported only inside the peers' own environments (BentoML's, Ray Serve's, PyTriton's), so it imports nothing
from `service`: each peer is what a team would write with that framework's documentation.
"""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

MODELS: dict[str, str] = json.loads(os.environ.get("BENCH_PEER_MODELS", "{}"))
MAX_BATCH = int(os.environ.get("BENCH_PEER_MAX_BATCH", "16"))
THREADS = int(os.environ.get("BENCH_PEER_THREADS", "2"))


class Model:
    """One ONNX file and what its `vision.*` metadata says about input and outputs."""

    def __init__(self, path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        self.labels: list[str] = json.loads(props["vision.labels"])
        self.input: dict[str, Any] = json.loads(props["vision.input"])
        self.outputs: dict[str, str] = json.loads(props["vision.outputs"])
        self.letterbox = props["vision.resize"] == "letterbox"

    def prepare(self, image: Image.Image) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """Decode and resize to the input; returns pixels and (scale_x, scale_y, pad_x, pad_y) to map back."""
        width, height = self.input["width"], self.input["height"]
        mode = "L" if self.input["channels"] == 1 else "RGB"
        original = image.size
        image.draft(mode, (width, height))
        image = image.convert(mode)
        if not self.letterbox:
            resized = image.resize((width, height), Image.Resampling.BILINEAR)
            scale = (original[0] / width, original[1] / height, 0.0, 0.0)
        else:
            ratio = min(width / original[0], height / original[1])
            inner = (max(1, round(original[0] * ratio)), max(1, round(original[1] * ratio)))
            resized = Image.new(mode, (width, height))
            pad = ((width - inner[0]) // 2, (height - inner[1]) // 2)
            resized.paste(image.resize(inner, Image.Resampling.BILINEAR), pad)
            scale = (1 / ratio, 1 / ratio, float(pad[0]), float(pad[1]))
        pixels = np.asarray(resized, dtype=np.float32)
        return pixels.reshape(height, width, self.input["channels"]), scale

    def run(
        self, images: list[Image.Image]
    ) -> tuple[dict[str, np.ndarray], list[tuple[float, ...]], list[tuple[int, int]]]:
        """Prepare every image, run them as one batch; also returns each image's scales and original size."""
        sizes = [image.size for image in images]
        prepared = [self.prepare(image) for image in images]
        batch = np.stack([pixels for pixels, _ in prepared])
        values = self.session.run(list(self.outputs.values()), {self.input["name"]: batch})
        return dict(zip(self.outputs, values, strict=True)), [scale for _, scale in prepared], sizes


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = area[best] + area[rest] - inter
        order = rest[inter / np.maximum(union, 1e-9) <= threshold]
    return keep


def load_models() -> dict[str, Model]:
    return {task: Model(path) for task, path in MODELS.items()}


def classify(model: Model, images: list[Image.Image]) -> list[dict[str, Any]]:
    outputs, _, _ = model.run(images)
    answers = []
    for probabilities in outputs["probabilities"]:
        top = np.argsort(-probabilities)[:5]
        answers.append({"top": [{"label": model.labels[i], "p": float(probabilities[i])} for i in top]})
    return answers


def detect(model: Model, images: list[Image.Image]) -> list[dict[str, Any]]:
    outputs, scales, _ = model.run(images)
    size = np.array([model.input["width"], model.input["height"]] * 2, dtype=np.float32)
    answers = []
    for boxes, iou, classes, scale in zip(
        outputs["boxes"], outputs["iou"], outputs["class_probabilities"], scales, strict=True
    ):
        scores = classes.max(axis=1) * iou
        keep = np.flatnonzero(scores >= 0.25)
        pixels = boxes[keep] * size - np.array([scale[2], scale[3]] * 2)
        pixels *= np.array([scale[0], scale[1]] * 2)
        chosen = nms(pixels, scores[keep], 0.45)[:100]
        answers.append(
            {
                "detections": [
                    {
                        "label": model.labels[int(classes[keep[i]].argmax())],
                        "score": float(scores[keep[i]]),
                        "box": [float(v) for v in pixels[i]],
                    }
                    for i in chosen
                ]
            }
        )
    return answers


def segment(model: Model, images: list[Image.Image]) -> list[dict[str, Any]]:
    outputs, _, sizes = model.run(images)
    answers = []
    for probabilities, size in zip(outputs["probabilities"], sizes, strict=True):
        mask = Image.fromarray((probabilities.argmax(axis=-1) + 1).astype(np.uint8))
        buffer = io.BytesIO()
        mask.resize(size, Image.Resampling.NEAREST).save(buffer, format="PNG")
        answers.append({"mask_png": base64.b64encode(buffer.getvalue()).decode("ascii")})
    return answers


ANSWERS = {"classify": classify, "detect": detect, "segment": segment}
