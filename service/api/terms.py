"""The words the model file and the API share: task names, resize modes, trimap styles, model names, input.

They appear both in a model's `vision.*` metadata (service.core.contract reads them) and in the answers of
`/models`, so they live with the wire types: pydantic only, importable by the client without the server.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Task = Literal["classify", "detect", "segment"]
ResizeMode = Literal["stretch", "letterbox"]
# How a trimap PNG is drawn: its values as grey levels, a colour per class, or tinted over the photo.
TrimapStyle = Literal["mask", "color", "overlay"]
# Why a model answers its task by default: VISION_DEFAULT_MODELS names it, or it came first by name.
DefaultReason = Literal["configured", "first_by_name"]
# Model names appear in paths and query strings: a conservative alphabet, and not too long for a metric label.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class InputSpec(BaseModel):
    """What the model's image input looks like: raw 0..255 pixels, NHWC float32."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Input tensor name.", examples=["image"])
    height: int = Field(gt=0, le=8192, description="Input height in pixels.", examples=[224])
    width: int = Field(gt=0, le=8192, description="Input width in pixels.", examples=[224])
    channels: Literal[1, 3] = Field(description="1 for greyscale, 3 for RGB.", examples=[3])
    layout: Literal["NHWC"] = Field(default="NHWC", description="Tensor layout.")
    dtype: Literal["float32"] = Field(default="float32", description="Tensor element type.")
