"""Request and response bodies as client teams see them in `/docs`.

At run time this imports only pydantic and `terms`, so the client's wheel carries it as `vision_client.api`
and parses answers with it; the engine's types are for the `of` builders' hints alone.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .terms import DefaultReason, InputSpec, ResizeMode, Task, TrimapStyle

if TYPE_CHECKING:
    from collections.abc import Callable

    from service.core import engine
    from service.core.errors import ImageError
    from service.core.monitor import MonitorReport
    from service.core.repository import LoadedModel, Readiness
    from service.core.tasks.classify import ClassifiedImage
    from service.core.tasks.detect import DetectedImage
    from service.core.tasks.detect import Detection as FoundObject
    from service.core.tasks.explain import ExplainedImage
    from service.core.tasks.segment import SegmentedImage
    from service.core.tasks.task import ImageSize as Size


# The trimap the bundled segmenter answers for docs/examples/star.jpg, as its examples show it.
STAR_TRIMAP_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAI0AAACHCAAAAAAOroUfAAAB0klEQVR4Ac3BAXLiQBAEwZqK/f+Tdw44BSGDjIURuDNLgkgSSSJJJIkk"
    "kSSSRJJIEkkiSSSJJJEkkkSSSBJJIkkkiSSRJJJEkkgSSTJ4v2LR/ECSSJLBuxX7SRJJIkkG71WcTZAdJIl8yJxQxWOSZPBOxdlkL0ki"
    "SSTJ4G2Ki8l+kmTwJsWWonlAkgxeVDw0eYYkkSSD3yueMpEfSJLBISbIvcmdguY7kmRwgMnJZCGTh4pmmyQpeUXx32QP2dYsJEnJa4rF"
    "ZBf5ViNJSl5VLCbPkFuNJBm8rCl+YbIoioUkGRygKU5k8gvFlSQpOUhxNnmKrDSSZPBXZKW5kCSSZHCUpthLVporSTL4MFlrvpAkg6MU"
    "O8hVc0+SDP5Gs0WSDA5RXEz2abZJEkkiSQbHmbxKkgwOUNySq8nKRB6QJIPDyRcy2UuSSJLBURqQLTLZR5IMDtGcyFWzKM6EyQ6SZHCA"
    "Zq1ZaYoLmfxIkpS8qmgeKhYTkItmiyQp+Yzii0lxT5IMPqQpVoqmuCVJBh/TQHFV3JMkg49qTopmmyQZfF7zHUkiSSSJJJEkkkSSSBJJ"
    "IkkkiSSRJJJEkkgSSSJJJIkkkSSSRJJIEkkiSSSJJJEk/wBO0TxL3SnqeAAAAABJRU5ErkJggg=="
)


# A heat grid's cells to 4 decimals: a 1/10,000 step is far finer than any picture of it shows.
GRID_DECIMALS = 4

# What /explain/json answers for docs/examples/star.jpg with the bundled classifier: the star fills the
# middle right of the picture.
STAR_HEAT_GRID = [
    [0.1296, 0.136, 0.1495, 0.094, 0.09, 0.0366, 0.0402, 0.0588],
    [0.1326, 0.1434, 0.1211, 0.0635, 0.1087, 0.1323, 0.1356, 0.0664],
    [0.1412, 0.1544, 0.151, 0.1547, 0.3642, 0.553, 0.3968, 0.1759],
    [0.1328, 0.1148, 0.0845, 0.2208, 0.5458, 1.0, 0.5386, 0.1043],
    [0.1265, 0.0753, 0.1042, 0.229, 0.6202, 0.9907, 0.504, 0.1316],
    [0.098, 0.0, 0.0728, 0.1377, 0.2164, 0.3618, 0.2371, 0.1175],
    [0.1202, 0.0674, 0.0524, 0.0456, 0.0335, 0.1155, 0.048, 0.105],
    [0.1413, 0.1187, 0.1177, 0.0852, 0.0393, 0.0859, 0.0556, 0.1086],
]

RESULTS = (
    "One entry per uploaded image, in upload order; with `partial=true`, a FailedImage in the place of each "
    "image that could not be answered."
)


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


class ErrorBody(Schema):
    code: str = Field(description="Stable machine-readable error code.", examples=["invalid_parameter"])
    message: str = Field(description="What went wrong, for people.", examples=["top_k: must be at least 1"])
    detail: Any = Field(default=None, description="Structured detail where it helps.")


class ErrorResponse(Schema):
    """Every error is answered with this envelope."""

    error: ErrorBody


class FailedImage(Schema):
    """An image of a `partial=true` call that could not be answered, in its place: the error it alone would
    have got, whose detail names it: `index` in the call, and `filename` where the upload had one."""

    error: ErrorBody

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "unsupported_image",
                        "message": "not an image, or not one of JPEG, PNG, WebP, BMP, GIF or TIFF",
                        "detail": {"index": 1, "filename": "notes.txt"},
                    }
                }
            ]
        }
    )


# The engine's answers as the plain data the response models validate in one call.
def _model_ref(model: engine.ModelId) -> dict[str, Any]:
    return {"name": model.name, "version": model.version}


def _image_size(size: Size) -> dict[str, int]:
    return {"width": size.width, "height": size.height}


def _per_image(answer: engine.Answer[Any], fields: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """The `results` of a task's answer: per image its size, the task's `fields` and whether it is
    unfamiliar, or the error in its place."""
    return [
        _failure(image)
        if isinstance(image, Exception)
        else {"image": _image_size(image.size), **fields(image), "unfamiliar": image.unfamiliar}
        for image in answer.images
    ]


def _failure(error: ImageError) -> dict[str, Any]:
    """A failed image of a partial call, as FailedImage."""
    return {"error": {"code": error.code, "message": error.message, "detail": error.detail}}


def _predictions(image: ClassifiedImage) -> dict[str, Any]:
    return {
        "predictions": [
            {"label": label, "class_id": class_id, "probability": probability}
            for class_id, label, probability in image.predictions
        ]
    }


def _detections(image: DetectedImage) -> dict[str, Any]:
    return {"detections": [_detection(found) for found in image.detections]}


def _segmentation(image: SegmentedImage) -> dict[str, Any]:
    return {"fractions": image.fractions, "png_base64": base64.b64encode(image.png).decode("ascii")}


def _explanation(image: ExplainedImage) -> dict[str, Any]:
    return {
        "label": image.label,
        "class_id": image.class_id,
        "score": image.score,
        "grid": [[round(cell, GRID_DECIMALS) for cell in row] for row in image.grid.tolist()],
    }


def _detection(found: FoundObject) -> dict[str, Any]:
    x_min, y_min, x_max, y_max = found.box
    return {
        "label": found.label,
        "class_id": found.class_id,
        "score": found.score,
        "iou": found.iou,
        "box": {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max},
    }


Unfamiliar = Annotated[
    bool | None,
    Field(
        description=(
            "True when the model's confidence in this image is under the 1st percentile of its "
            "confidence on its own held-out images (the reference in its file): the image is unlike what "
            "it was trained on, and the answer deserves less trust. Null when the model file carries no "
            "reference."
        ),
        examples=[False],
    ),
]


class ClassifyResult(Schema):
    """Top-k classes of one image, best first."""

    image: ImageSize
    predictions: list[Prediction]
    unfamiliar: Unfamiliar = None


class ClassifyResponse(Schema):
    model: ModelRef
    results: list[ClassifyResult | FailedImage] = Field(description=RESULTS)

    @classmethod
    def of(cls, answer: engine.Answer[ClassifiedImage]) -> ClassifyResponse:
        return cls.model_validate(cls.document(answer))

    @staticmethod
    def document(answer: engine.Answer[ClassifiedImage]) -> dict[str, Any]:
        """The answer as JSON data of this schema: what the route encodes, without building the models."""
        return {"model": _model_ref(answer.model), "results": _per_image(answer, _predictions)}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "shapes-classifier", "version": 1},
                    "results": [
                        {
                            "image": {"width": 141, "height": 135},
                            "predictions": [
                                {"label": "star", "class_id": 4, "probability": 0.9999999},
                                {"label": "cross", "class_id": 1, "probability": 0.000000117},
                            ],
                            "unfamiliar": False,
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
    unfamiliar: Unfamiliar = None


class DetectResponse(Schema):
    model: ModelRef
    results: list[DetectResult | FailedImage] = Field(description=RESULTS)

    @classmethod
    def of(cls, answer: engine.Answer[DetectedImage]) -> DetectResponse:
        return cls.model_validate(cls.document(answer))

    @staticmethod
    def document(answer: engine.Answer[DetectedImage]) -> dict[str, Any]:
        """The answer as JSON data of this schema: what the route encodes, without building the models."""
        return {"model": _model_ref(answer.model), "results": _per_image(answer, _detections)}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "shapes-detector", "version": 1},
                    "results": [
                        {
                            "image": {"width": 127, "height": 121},
                            "detections": [
                                {
                                    "label": "star",
                                    "class_id": 4,
                                    "score": 0.7597,
                                    "iou": 0.7647,
                                    "box": {"x_min": 0.0, "y_min": 76.09, "x_max": 30.76, "y_max": 107.41},
                                },
                                {
                                    "label": "cross",
                                    "class_id": 1,
                                    "score": 0.7296,
                                    "iou": 0.8524,
                                    "box": {"x_min": 42.74, "y_min": 63.88, "x_max": 65.02, "y_max": 86.55},
                                },
                                {
                                    "label": "hexagon",
                                    "class_id": 2,
                                    "score": 0.534,
                                    "iou": 0.5963,
                                    "box": {"x_min": 87.45, "y_min": 30.4, "x_max": 122.55, "y_max": 66.52},
                                },
                            ],
                            "unfamiliar": False,
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
    unfamiliar: Unfamiliar = None


class SegmentResponse(Schema):
    model: ModelRef
    style: TrimapStyle
    results: list[SegmentResult | FailedImage] = Field(description=RESULTS)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "shapes-segmenter", "version": 1},
                    "style": "mask",
                    "results": [
                        {
                            "image": {"width": 141, "height": 135},
                            "fractions": {"pet": 0.0832, "background": 0.8391, "border": 0.0778},
                            "png_base64": STAR_TRIMAP_PNG,
                            "unfamiliar": False,
                        }
                    ],
                }
            ]
        }
    )

    @classmethod
    def of(cls, answer: engine.Answer[SegmentedImage], style: TrimapStyle) -> SegmentResponse:
        return cls.model_validate(cls.document(answer, style))

    @staticmethod
    def document(answer: engine.Answer[SegmentedImage], style: TrimapStyle) -> dict[str, Any]:
        """The answer as JSON data of this schema: what the route encodes, without building the models."""
        return {
            "model": _model_ref(answer.model),
            "style": style,
            "results": _per_image(answer, _segmentation),
        }


class ExplainResult(Schema):
    """Where in one image the model saw a class: its class activation map over the whole image."""

    image: ImageSize
    label: str = Field(
        description="The class explained: the top class, or the one `class` named.", examples=["star"]
    )
    class_id: int = Field(description="Index of the class in the model's labels.", examples=[4])
    score: float = Field(ge=0, le=1, description="The class's softmax probability.", examples=[0.9999])
    grid: list[list[float]] = Field(
        description=(
            "The class's activation map at the feature map's resolution, scaled to 0..1 (1 the hottest "
            "cell): rows top to bottom, each row's cells left to right, together covering the whole image."
        ),
        examples=[[[0.0, 0.4], [0.7, 1.0]]],
    )
    unfamiliar: Unfamiliar = None


class ExplainResponse(Schema):
    model: ModelRef
    results: list[ExplainResult | FailedImage] = Field(description=RESULTS)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "shapes-classifier", "version": 1},
                    "results": [
                        {
                            "image": {"width": 141, "height": 135},
                            "label": "star",
                            "class_id": 4,
                            "score": 0.9999999,
                            "grid": STAR_HEAT_GRID,
                            "unfamiliar": False,
                        }
                    ],
                }
            ]
        }
    )

    @classmethod
    def of(cls, answer: engine.Answer[ExplainedImage]) -> ExplainResponse:
        return cls.model_validate(cls.document(answer))

    @staticmethod
    def document(answer: engine.Answer[ExplainedImage]) -> dict[str, Any]:
        """The answer as JSON data of this schema: what the route encodes, without building the models."""
        return {"model": _model_ref(answer.model), "results": _per_image(answer, _explanation)}


class LoadedVersion(Schema):
    """One loaded version of a model, as its file describes itself."""

    version: int = Field(examples=[1])
    task: Task
    labels: list[str] = Field(examples=[["circle", "cross", "hexagon", "square", "star", "triangle"]])
    input: InputSpec
    resize: ResizeMode
    outputs: list[str] = Field(
        description="The output roles its file maps (docs/model-contract.md); `heatmap`: /explain works.",
        examples=[["probabilities", "heatmap"]],
    )
    provider: Literal["cpu", "cuda"] = Field(description="Where this version runs.")
    metrics: dict[str, Any] = Field(description="Held-out evaluation from `vision.metrics`.")
    trained: dict[str, Any] = Field(description="How it was trained, from `vision.trained`.")
    sha256: str | None = Field(
        default=None,
        description="The file's digest (`vision.sha256`), checked when it loaded; null for an unsigned file.",
        examples=["014ac225b9b6dad849a1006bf7339631a255534a175be2af5df437542b153095"],
    )

    @classmethod
    def of(cls, loaded: LoadedModel) -> LoadedVersion:
        meta, model = loaded.metadata, loaded.model
        return cls(
            version=meta.version,
            task=meta.task,
            labels=list(meta.labels),
            input=meta.input,
            resize=meta.resize,
            outputs=list(meta.outputs),
            provider="cuda" if model.device == "cuda" else "cpu",
            metrics=meta.metrics,
            trained=meta.trained,
            sha256=model.sha256,
        )


class ModelInfo(Schema):
    """A model and its loaded versions; requests without `version` get `latest`."""

    name: str = Field(examples=["shapes-classifier"])
    task: Task
    default_for: Task | None = Field(description="The task this model answers by default, if any.")
    default_reason: DefaultReason | None = Field(
        default=None,
        description=(
            "Why it is the default: `configured`, as `VISION_DEFAULT_MODELS` names it, or `first_by_name`: "
            "none is configured, it came first by name when the task needed a default, and it stays the "
            "default across reloads until it leaves."
        ),
        examples=["configured"],
    )
    latest: int = Field(examples=[1])
    versions: list[LoadedVersion]

    @classmethod
    def of(cls, service: engine.Engine, name: str) -> ModelInfo:
        versions = [model for model in service.models() if model.metadata.name == name]
        latest = versions[-1].metadata
        default = service.default_for(latest.task)
        mine = default if default is not None and default.name == name else None
        return cls(
            name=name,
            task=latest.task,
            default_for=latest.task if mine else None,
            default_reason=mine.reason if mine else None,
            latest=latest.version,
            versions=[LoadedVersion.of(model) for model in versions],
        )


class SignalDrift(Schema):
    """One signal of drift monitoring: its bins, the share of the reference's and of the window's values in
    each, and the population stability index between them."""

    name: str = Field(description="The signal, as docs/model-contract.md names it.", examples=["confidence"])
    bins: list[str] = Field(
        description="Value ranges, or the model's labels for `class` and `class_fractions`.",
        examples=[["< 0.4", "0.4 to 0.9", ">= 0.9"]],
    )
    reference: list[float] = Field(
        description="Share of the reference per bin.", examples=[[0.05, 0.2, 0.75]]
    )
    window: list[float] = Field(description="Share of the window per bin.", examples=[[0.06, 0.22, 0.72]])
    psi: float | None = Field(
        description=(
            "Population stability index of the window against the reference: under 0.1 stable, 0.1 to 0.2 "
            "moving, over 0.2 drifted. Null until the window holds `minimum` images."
        ),
        examples=[0.004],
    )


class ReferenceInfo(Schema):
    """The reference a model file carries (`vision.reference`)."""

    images: int = Field(description="Images it was measured on.", examples=[500])
    source: str = Field(description="What they were.", examples=["held-out split of oxford-layout:shapes"])
    low_confidence: float = Field(
        description="The 1st percentile of their confidence: an image under it is answered `unfamiliar`.",
        examples=[0.93],
    )


class MonitorResponse(Schema):
    """How the images a model version answered lately compare with its held-out images."""

    model: ModelRef
    monitoring: bool = Field(description="Whether the service watches answers (`VISION_MONITOR`).")
    reference: ReferenceInfo | None = Field(description="Null when the model file carries no reference.")
    images: int = Field(description="Images in the window.", examples=[734])
    window: int = Field(description="The most images it holds (`VISION_MONITOR_WINDOW`).", examples=[1000])
    minimum: int = Field(
        description="Images it needs before it reports a PSI (`VISION_MONITOR_MINIMUM`).", examples=[200]
    )
    unfamiliar: int = Field(description="Images in the window answered `unfamiliar`.", examples=[7])
    signals: list[SignalDrift]

    @classmethod
    def of(cls, model: engine.ModelId, report: MonitorReport | None) -> MonitorResponse:
        answered = ModelRef(name=model.name, version=model.version)
        if report is None:
            return cls(
                model=answered,
                monitoring=False,
                reference=None,
                images=0,
                window=0,
                minimum=0,
                unfamiliar=0,
                signals=[],
            )
        reference = report.reference
        return cls(
            model=answered,
            monitoring=True,
            reference=None
            if reference is None
            else ReferenceInfo.model_validate(reference, from_attributes=True),
            images=report.images,
            window=report.capacity,
            minimum=report.minimum,
            unfamiliar=report.unfamiliar,
            signals=[SignalDrift.model_validate(signal, from_attributes=True) for signal in report.signals],
        )


class LoadFailureInfo(Schema):
    """A model file that was refused, and which metadata key or tensor was wrong."""

    name: str
    version: str
    key: str = Field(examples=["vision.input"])
    message: str


class ModelsResponse(Schema):
    models: list[ModelInfo]
    failures: list[LoadFailureInfo] = Field(description="Model files that were found but refused.")

    @classmethod
    def of(cls, service: engine.Engine) -> ModelsResponse:
        names = sorted({model.metadata.name for model in service.models()})
        return cls(
            models=[ModelInfo.of(service, name) for name in names],
            failures=[
                LoadFailureInfo(name=f.name, version=f.version, key=f.key, message=f.message)
                for f in service.failures()
            ],
        )


class Health(Schema):
    status: Literal["ok", "loading", "unavailable", "draining"] = Field(
        description="`ok` takes traffic; `draining` after SIGTERM, while requests are still answered."
    )
    reason: str | None = Field(default=None, description="Why the service is not ready, when it is not.")
    models: list[str] = Field(default_factory=list, description="Loaded model versions as `name:version`.")

    @classmethod
    def of(cls, readiness: Readiness) -> Health:
        return cls(status=readiness.status, reason=readiness.reason, models=readiness.models)
