"""Failures the engine reports: a stable machine-readable `code` and a message, never a transport status."""

from __future__ import annotations

from typing import Any, ClassVar


def excerpt(text: str, limit: int = 64) -> str:
    """`text` cut to `limit` characters, for quoting what a client sent in an error message."""
    return text if len(text) <= limit else f"{text[:limit]}..."


class ServiceError(Exception):
    """A failure a caller can act on; adapters map `code` to their protocol's status."""

    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, detail: Any = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        # Seconds after which the same call may succeed (overload, loading); None when retrying cannot help.
        self.retry_after = retry_after


class InternalError(ServiceError):
    """A failure of the service itself, logged where it happened; the caller learns no more than that."""

    code = "internal_error"


class ModelNotFoundError(ServiceError):
    code = "model_not_found"


class ModelLoadError(ServiceError):
    """A model control request to load a model whose file is refused."""

    code = "load_failed"


class WrongTaskError(ServiceError):
    code = "wrong_task"


class CannotExplainError(ServiceError):
    """/explain on a model whose file has no `heatmap` output."""

    code = "cannot_explain"


class UnknownLabelError(ServiceError):
    """An option names a label the model does not have."""

    code = "unknown_label"


class InvalidInputError(ServiceError):
    """Tensors that do not fit the model: names, shapes, element types, counts."""

    code = "invalid_input"


class TooManyImagesError(ServiceError):
    code = "too_many_images"


class OverloadedError(ServiceError):
    code = "overloaded"


# What a shed caller is told to wait: by then the requests ahead of it have mostly finished.
OVERLOADED_RETRY_AFTER_SECONDS = 1


class NotReadyError(ServiceError):
    code = "not_ready"


class ImageError(ServiceError):
    """An upload that cannot become a model input."""

    code = "bad_image"


class EmptyImageError(ImageError):
    code = "empty_image"


class UnsupportedImageError(ImageError):
    code = "unsupported_image"


class CorruptImageError(ImageError):
    code = "corrupt_image"


class ImageTooLargeError(ImageError):
    code = "image_too_large"
