"""The one table of statuses: every error code the engine or the adapters raise has one, per protocol."""

from __future__ import annotations

import pytest

from service.core import errors as core_errors
from service.http import errors as http_errors
from service.http.errors import STATUS, status_of


def codes_raised() -> set[str]:
    """The code of every error class the engine and the HTTP adapters define."""
    classes = [
        value
        for module in (core_errors, http_errors)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, core_errors.ServiceError)
    ]
    return {error.code for error in classes}


def test_every_code_has_a_status() -> None:
    assert codes_raised() - set(STATUS) == set()


@pytest.mark.parametrize(
    ("code", "task", "v2"),
    [
        ("empty_image", 400, 400),
        ("corrupt_image", 400, 400),
        ("unsupported_image", 415, 415),
        ("image_too_large", 413, 413),
        ("invalid_input", 400, 400),
        ("invalid_parameter", 422, 400),
        ("wrong_task", 422, 400),
        ("model_not_found", 404, 404),
        ("overloaded", 503, 503),
        ("not_ready", 503, 503),
        ("unauthorized", 401, 401),
    ],
)
def test_statuses_per_protocol(code: str, task: int, v2: int) -> None:
    assert status_of(code) == task
    assert status_of(code, v2=True) == v2


def test_bodies_follow_the_path() -> None:
    assert http_errors.rendered_error("/classify", "not_ready", "loading") == (
        503,
        {"error": {"code": "not_ready", "message": "loading", "detail": None}},
    )
    assert http_errors.rendered_error("/v2/models/m/infer", "wrong_task", "no") == (400, {"error": "no"})
    assert http_errors.rendered_error("/v2", "not_found", "nothing here") == (404, {"error": "nothing here"})
    assert http_errors.rendered_error("/v2x", "not_found", "ours")[1]["error"]["code"] == "not_found"
