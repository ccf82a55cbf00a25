"""docs/openapi.json is what the app serves; regenerate it with `python -m service.http.openapi`."""

from __future__ import annotations

from service.http.openapi import DOCUMENT, openapi_document, render


def test_exported_document_has_not_drifted() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(openapi_document()), (
        "docs/openapi.json is stale: run `python -m service.http.openapi`"
    )


def test_every_schema_property_is_described_or_exemplified() -> None:
    schemas = openapi_document()["components"]["schemas"]
    expected = {"ClassifyResponse", "DetectResponse", "Detection", "Prediction", "SegmentResult", "ErrorBody"}
    assert expected <= set(schemas)
    for field in ("label", "class_id", "score", "iou"):
        prop = schemas["Detection"]["properties"][field]
        assert prop.get("description") or prop.get("examples"), field
