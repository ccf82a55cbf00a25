"""/docs and /redoc in a real browser: Debian's headless Chromium, driven by Playwright, against a live server
over the bundled models. Every operation is listed, "Try it out" classifies an upload, and no request leaves
the server (the pages' Content Security Policy keeps ReDoc's CDN logo and Swagger's validator badge away).
Screenshots go to a temporary folder, or to $VISION_SCREENSHOTS_DIR (`make screenshots`: docs/screenshots)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
from browsers import Browser, playwright
from conftest import REPO_ROOT, LiveServer
from PIL import Image
from spec_examples import body_example

from service.core.tasks.segment import TRIMAP_COLORS

SPEC = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
JPEG = {"Content-Type": "image/jpeg"}
OPERATIONS = [operation for path in SPEC["paths"].values() for operation in path.values()]


def try_it_out(page: playwright.Page, server: LiveServer, operation_id: str) -> playwright.Locator:
    """Swagger UI's inference operation `operation_id`, opened for "Try it out" with examples/star.jpg as the
    raw body, ready for its parameters and Execute."""
    page.goto(f"{server.url}/docs")
    operation = page.locator(f"#operations-inference-{operation_id}")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator(".opblock-section-request-body select").select_option("application/octet-stream")
    operation.locator("input[type=file]").set_input_files(REPO_ROOT / "docs" / "examples" / "star.jpg")
    return operation


def test_swagger_ui_lists_every_operation(
    browser: Browser, bundled_server: LiveServer, screenshots: Path
) -> None:
    page = browser.page
    page.goto(f"{bundled_server.url}/docs")
    page.wait_for_selector("#operations-inference-classify_classify_post")
    ids = page.locator(".opblock").evaluate_all("blocks => blocks.map(block => block.id)")
    assert sorted(ids) == sorted(
        f"operations-{op['tags'][0].replace(' ', '_')}-{op['operationId']}" for op in OPERATIONS
    )
    page.screenshot(path=screenshots / "swagger-operations.png")
    assert browser.outside == []


def test_try_it_out_classifies_an_upload(
    browser: Browser, bundled_server: LiveServer, screenshots: Path
) -> None:
    page = browser.page
    operation = try_it_out(page, bundled_server, "classify_classify_post")
    operation.locator("tr[data-param-name=top_k] input").fill("2")
    operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table tbody .response-col_description pre").first
    answer.wait_for()
    shown = json.loads(answer.inner_text())
    assert operation.locator(".live-responses-table tbody .response-col_status").first.inner_text() == "200"
    # The request behind the documented example (star.jpg, top_k=2), so the same labels.
    documented = body_example("ClassifyResponse")["results"][0]["predictions"]
    assert [p["label"] for p in shown["results"][0]["predictions"]] == [p["label"] for p in documented]
    assert shown["results"][0]["image"] == {"width": 141, "height": 135}
    page.evaluate("window.scrollTo(0, 0)")  # so the boxes below are in page coordinates
    top = operation.bounding_box()
    bottom = operation.locator(".live-responses-table").first.bounding_box()
    assert top is not None
    assert bottom is not None
    page.screenshot(
        path=screenshots / "swagger-try-it-out.png",
        full_page=True,
        clip={
            "x": top["x"],
            "y": top["y"],
            "width": top["width"],
            "height": bottom["y"] + bottom["height"] - top["y"],
        },
    )
    assert browser.outside == []


def test_try_it_out_on_segment_shows_the_mask(
    browser: Browser, bundled_server: LiveServer, screenshots: Path
) -> None:
    page = browser.page
    operation = try_it_out(page, bundled_server, "segment_segment_post")
    operation.locator("tr[data-param-name=style] select").select_option("color")
    operation.get_by_role("button", name="Execute").click()
    shown = operation.locator(".live-responses-table tbody .response-col_description img").first
    shown.wait_for()
    # Swagger shows the PNG from a blob: URL; a policy that forbids blob: images leaves it 0x0, broken.
    page.wait_for_function("image => image.complete", arg=shown.element_handle())
    assert shown.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [141, 135]
    # Pixel for pixel the PNG the service answers the same request with, pet (red) included.
    drawn = shown.evaluate(
        """image => {
            const canvas = document.createElement("canvas");
            canvas.width = image.naturalWidth;
            canvas.height = image.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(image, 0, 0);
            return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
        }"""
    )
    star = (REPO_ROOT / "docs" / "examples" / "star.jpg").read_bytes()
    answer = httpx.post(f"{bundled_server.url}/segment?style=color", content=star, headers=JPEG)
    served = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))
    assert np.array_equal(np.array(drawn, np.uint8).reshape(135, 141, 4)[..., :3], served)
    assert np.all(served == TRIMAP_COLORS[1], axis=-1).sum() > 100
    shown.screenshot(path=screenshots / "swagger-segment-mask.png")
    assert browser.outside == []


def test_redoc_lists_every_operation_and_fetches_nothing_outside(
    browser: Browser, bundled_server: LiveServer, screenshots: Path
) -> None:
    page = browser.page
    browser.console_errors.clear()
    page.goto(f"{bundled_server.url}/redoc")
    page.get_by_role("heading", name="Classify images").wait_for()
    menu = page.locator("[role=menuitem]").all_inner_texts()
    for operation in OPERATIONS:
        assert any(operation["summary"] in item for item in menu), operation["summary"]
    page.wait_for_load_state("networkidle")
    page.screenshot(path=screenshots / "redoc.png")
    assert browser.outside == []
    assert browser.console_errors == []  # its footer's logo is drawn inline, not refused from a CDN
