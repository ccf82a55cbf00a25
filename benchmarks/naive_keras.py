"""The naive baseline: FastAPI calling Keras `model.predict` once per request, the way course code does.

Deliberately unoptimised and written as tutorials write it: an `async` endpoint that decodes with Pillow
and calls `model.predict` on one image, on the event loop. BENCH_NAIVE_MODELS maps each task to the
trainer's run directory; its `model.keras` is wrapped exactly as the exporter wraps it before converting
to ONNX, so the naive service runs the very model the service serves. Run:
`uvicorn benchmarks.naive_keras:app`.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import Response
from PIL import Image

from training.train import contract_model

MODELS: dict[str, str] = json.loads(os.environ.get("BENCH_NAIVE_MODELS", "{}"))

app = FastAPI(title="naive Keras service")
models = {
    task: contract_model(keras.models.load_model(Path(run) / "model.keras", compile=False), task)
    for task, run in MODELS.items()
}


def load_image(contents: bytes, model: keras.Model) -> np.ndarray:
    _, height, width, channels = model.input_shape
    image = Image.open(io.BytesIO(contents)).convert("L" if channels == 1 else "RGB")
    image = image.resize((width, height))
    return np.array(image, dtype=np.float32).reshape(1, height, width, channels)


@app.get("/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/classify")
async def classify(image: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's idiom
    model = models["classify"]
    probabilities = model.predict(load_image(await image.read(), model), verbose=0)["probabilities"][0]
    top = np.argsort(-probabilities)[:5]
    return {"top": [{"class_id": int(i), "p": float(probabilities[i])} for i in top]}


@app.post("/detect")
async def detect(image: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's idiom
    model = models["detect"]
    outputs = model.predict(load_image(await image.read(), model), verbose=0)
    boxes, iou, classes = outputs["boxes"][0], outputs["iou"][0], outputs["class_probabilities"][0]
    scores = classes.max(axis=-1) * iou
    keep = np.flatnonzero(scores >= 0.25)
    return {"detections": [{"box": boxes[i].tolist(), "score": float(scores[i])} for i in keep]}


@app.post("/segment")
async def segment(image: UploadFile = File(...)) -> Response:  # noqa: B008 - FastAPI's idiom
    model = models["segment"]
    contents = await image.read()
    probabilities = model.predict(load_image(contents, model), verbose=0)["probabilities"][0]
    mask = Image.fromarray((probabilities.argmax(axis=-1) + 1).astype(np.uint8))
    buffer = io.BytesIO()
    mask.resize(Image.open(io.BytesIO(contents)).size, Image.Resampling.NEAREST).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")
