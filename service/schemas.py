"""Request and response bodies as client teams see them in `/docs`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.contract import InputSpec, ResizeMode, Task


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True)


class ModelRef(Schema):
    """Which model version answered."""

    name: str = Field(description="Model name.", examples=["shapes-classifier"])
    version: int = Field(description="Model version that answered.", examples=[1])


class Prediction(Schema):
    """One class and its probability."""

    label: str = Field(description="Class name.", examples=["star"])
    class_id: int = Field(description="Index of the class in the model's labels.", examples=[3])
    probability: float = Field(ge=0, le=1, description="Softmax probability.", examples=[0.987])


class ImageSize(Schema):
    width: int = Field(description="Width of the upright input image in pixels.", examples=[640])
    height: int = Field(description="Height of the upright input image in pixels.", examples=[480])


class ClassifyResult(Schema):
    """Top-k classes of one image, best first."""

    image: ImageSize
    predictions: list[Prediction]


class ClassifyResponse(Schema):
    model: ModelRef
    results: list[ClassifyResult] = Field(description="One entry per uploaded image, in upload order.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "shapes-classifier", "version": 1},
                    "results": [
                        {
                            "image": {"width": 640, "height": 480},
                            "predictions": [
                                {"label": "star", "class_id": 3, "probability": 0.987},
                                {"label": "cross", "class_id": 1, "probability": 0.009},
                            ],
                        }
                    ],
                }
            ]
        }
    )


class Box(Schema):
    """A box in original-image pixels (after EXIF orientation), clipped to the image."""

    x_min: float = Field(examples=[112.5])
    y_min: float = Field(examples=[40.0])
    x_max: float = Field(examples=[310.0])
    y_max: float = Field(examples=[262.25])


class Detection(Schema):
    """One detected object."""

    label: str = Field(description="Class name.", examples=["circle"])
    class_id: int = Field(description="Index of the class in the model's labels.", examples=[0])
    score: float = Field(description="Highest class probability x predicted IoU.", examples=[0.83])
    iou: float = Field(
        description="The model's own estimate of this box's IoU with the object.", examples=[0.88]
    )
    box: Box


class DetectResult(Schema):
    """Detections of one image, best first, after thresholding and non-max suppression."""

    image: ImageSize
    detections: list[Detection]


class DetectResponse(Schema):
    model: ModelRef
    results: list[DetectResult] = Field(description="One entry per uploaded image, in upload order.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "shapes-detector", "version": 1},
                    "results": [
                        {
                            "image": {"width": 640, "height": 480},
                            "detections": [
                                {
                                    "label": "circle",
                                    "class_id": 0,
                                    "score": 0.83,
                                    "iou": 0.88,
                                    "box": {"x_min": 112.5, "y_min": 40.0, "x_max": 310.0, "y_max": 262.25},
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )


class SegmentResult(Schema):
    """The trimap of one image as a PNG, and how much of the image each class covers."""

    image: ImageSize
    fractions: dict[str, float] = Field(
        description="Fraction of pixels per trimap class.",
        examples=[{"pet": 0.31, "background": 0.61, "border": 0.08}],
    )
    png_base64: str = Field(description="The PNG (in the requested style), base64-encoded.")


class SegmentResponse(Schema):
    model: ModelRef
    style: Literal["mask", "color", "overlay"]
    results: list[SegmentResult] = Field(description="One entry per uploaded image, in upload order.")


class LoadedVersion(Schema):
    """One loaded version of a model, as its file describes itself."""

    version: int = Field(examples=[1])
    task: Task
    labels: list[str] = Field(examples=[["circle", "cross", "hexagon", "square", "star", "triangle"]])
    input: InputSpec
    resize: ResizeMode
    provider: Literal["cpu", "cuda"] = Field(description="Where this version runs.")
    metrics: dict[str, Any] = Field(description="Held-out evaluation from `vision.metrics`.")
    trained: dict[str, Any] = Field(description="How it was trained, from `vision.trained`.")


class ModelInfo(Schema):
    """A model and its loaded versions; requests without `version` get `latest`."""

    name: str = Field(examples=["shapes-classifier"])
    task: Task
    default_for: Task | None = Field(description="The task this model answers by default, if any.")
    latest: int = Field(examples=[1])
    versions: list[LoadedVersion]


class LoadFailureInfo(Schema):
    """A model file that was refused, and which metadata key or tensor was wrong."""

    name: str
    version: str
    key: str = Field(examples=["vision.input"])
    message: str


class ModelsResponse(Schema):
    models: list[ModelInfo]
    failures: list[LoadFailureInfo] = Field(description="Model files that were found but refused.")


class Health(Schema):
    status: Literal["ok", "loading", "unavailable"]
    reason: str | None = Field(default=None, description="Why the service is not ready, when it is not.")
    models: list[str] = Field(default_factory=list, description="Loaded model versions as `name:version`.")


class ErrorBody(Schema):
    code: str = Field(description="Stable machine-readable error code.", examples=["invalid_parameter"])
    message: str = Field(description="What went wrong, for people.", examples=["top_k: must be at least 1"])
    detail: Any = Field(default=None, description="Structured detail where it helps.")


class ErrorResponse(Schema):
    """Every error is answered with this envelope."""

    error: ErrorBody


class TensorMetadata(Schema):
    """Open Inference Protocol: a tensor's name, element type and shape (-1 for a variable dimension)."""

    name: str = Field(examples=["image"])
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(examples=[[-1, 64, 64, 3]])


class ServerMetadata(Schema):
    name: str = Field(examples=["vision-service"])
    version: str = Field(examples=["0.1.0"])
    extensions: list[str] = Field(default_factory=list)


class ModelMetadataV2(Schema):
    """Open Inference Protocol model metadata."""

    name: str = Field(examples=["shapes-classifier"])
    versions: list[str] = Field(examples=[["1"]])
    platform: str = Field(default="onnxruntime_onnx")
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class InferTensor(Schema):
    """An input tensor of an inference request, data flattened in row-major order."""

    name: str = Field(examples=["image"])
    shape: list[int] = Field(examples=[[1, 2, 2, 3]])
    datatype: Literal["FP32"] = Field(examples=["FP32"])
    data: list[float] = Field(examples=[[0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255]])


class RequestedOutput(Schema):
    name: str = Field(examples=["probabilities"])


class InferRequest(Schema):
    """Open Inference Protocol inference request (JSON tensors)."""

    id: str | None = Field(default=None, max_length=128)
    inputs: list[InferTensor] = Field(min_length=1, max_length=1)
    outputs: list[RequestedOutput] | None = Field(
        default=None, description="Outputs to return; all if omitted."
    )


class OutputTensor(Schema):
    name: str
    shape: list[int]
    datatype: str = Field(examples=["FP32"])
    data: list[float]


class InferResponse(Schema):
    """Open Inference Protocol inference response."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[OutputTensor]
