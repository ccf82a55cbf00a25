"""The task options: the query parameters of /classify, /detect and /segment, defined once.

The engine's tasks take them, the routes validate the query string with them (the OpenAPI document shows
them), and the client and the `vision` CLI check and describe them from here, so a default, a bound or a
description lives in one place. Pydantic and `terms` only, like the rest of `service/api`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .terms import MODEL_NAME_PATTERN, TrimapStyle


class ModelChoice(BaseModel):
    """Which model version a call names: the task's default model and its highest version when omitted."""

    model_config = ConfigDict(frozen=True)

    model: str | None = Field(
        default=None,
        pattern=MODEL_NAME_PATTERN,
        description="Model to use; the task's default model when omitted.",
    )
    version: int | None = Field(default=None, ge=1, description="Model version; the highest when omitted.")


class TaskOptions(ModelChoice):
    """What every task call may ask: the model, and whether a batch keeps the answers of its good images."""

    partial: bool = Field(
        default=False,
        description=(
            "Answer every image that can be answered, and put each failed image's error, "
            '`{"error": {"code", "message", "detail": {"index", "filename"}}}`, in its place. '
            "Without it, one bad image fails the call, and the error's detail names it."
        ),
    )


class ClassifyOptions(TaskOptions):
    """How many classes to answer per image."""

    top_k: int = Field(default=5, ge=1, le=1000, description="How many classes to return per image.")


class DetectOptions(TaskOptions):
    """Which candidates become detections."""

    score_threshold: float = Field(
        default=0.25, ge=0, le=1, description="Drop detections whose score is below this."
    )
    iou_threshold: float = Field(
        default=0.45, ge=0, le=1, description="Non-max suppression: overlap above which a weaker box goes."
    )
    max_detections: int = Field(default=100, ge=1, le=1000, description="Most detections per image.")


class SegmentOptions(TaskOptions):
    """How the trimap PNG is drawn."""

    style: TrimapStyle = Field(
        default="mask",
        description="`mask`: values 1..3; `color`: coloured; `overlay`: blended over the photo.",
    )


class ExplainOptions(TaskOptions):
    """Which class's heat map to draw."""

    class_: str | None = Field(
        default=None,
        alias="class",
        description="The label whose heat map to show; the image's top class when omitted.",
        examples=["star"],
    )

    model_config = ConfigDict(frozen=True, populate_by_name=True)
