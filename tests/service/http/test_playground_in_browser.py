"""The playground at `/` in a real browser (the Chromium and Playwright of the docs test), over the bundled
models: an image dropped on the page comes back drawn for each task, the page asks nothing of any other
server, and it works behind an API key typed into it. Screenshots as in the docs test."""

from __future__ import annotations

from pathlib import Path

import pytest
from browsers import Browser, open_page, playwright
from conftest import BUNDLED_KEYS, REPO_ROOT, LiveServer

from service.http.routes.docs import POLICY

EXAMPLES = REPO_ROOT / "docs" / "examples"
# A drop as a person makes it: the file in a DataTransfer, dispatched on the drop zone.
DROP = """([bytes, name]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/jpeg" }));
    const zone = document.querySelector("#drop");
    const options = { dataTransfer: transfer, bubbles: true, cancelable: true };
    zone.dispatchEvent(new DragEvent("dragover", options));
    zone.dispatchEvent(new DragEvent("drop", options));
}"""
# Pixels of the box canvas that something was drawn on.
DRAWN_PIXELS = """canvas => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4) drawn += data[i] > 0;
    return drawn;
}"""


def open_playground(browser: Browser) -> None:
    browser.page.goto(f"{browser.server.url}/")
    models_loaded(browser)


def models_loaded(browser: Browser) -> None:
    browser.page.locator("#model option").nth(1).wait_for(state="attached")


def drop(browser: Browser, task: str, example: str) -> playwright.Locator:
    """Pick `task` on the open page, drop docs/examples/`example` on it and wait for its answer's card."""
    page = browser.page
    page.check(f"input[name=task][value={task}]")
    page.evaluate(DROP, [list((EXAMPLES / example).read_bytes()), example])
    card = page.locator("article.result").first
    card.locator("xpath=self::*[@data-done]").wait_for()
    assert card.get_attribute("data-done") == "ok", card.inner_text()
    return card


def test_the_page_has_the_docs_policy_and_links_to_the_docs(browser: Browser) -> None:
    response = browser.page.goto(f"{browser.server.url}/")
    assert response is not None
    assert response.headers["content-security-policy"] == POLICY
    browser.page.get_by_role("link", name="API docs").click()
    browser.page.wait_for_url(f"{browser.server.url}/docs")


def test_dropping_shapes_on_detect_draws_the_detectors_boxes(browser: Browser, screenshots: Path) -> None:
    open_playground(browser)
    card = drop(browser, "detect", "shapes.jpg")
    canvas = card.locator("canvas.boxes")
    assert int(canvas.get_attribute("data-boxes")) >= 3
    assert canvas.evaluate(DRAWN_PIXELS) > 500
    labels = card.locator(".detections li").evaluate_all("items => items.map(item => item.dataset.label)")
    assert len(labels) >= 3
    assert "IoU" in card.locator(".detections").inner_text()
    card.screenshot(path=screenshots / "playground-detect.png")
    assert browser.outside == []
    assert browser.console_errors == []


def test_star_is_classified_with_bars_and_the_request_is_shown(browser: Browser, screenshots: Path) -> None:
    open_playground(browser)
    card = drop(browser, "classify", "star.jpg")
    bars = card.locator(".bars li")
    assert bars.first.get_attribute("data-label") == "star"
    assert bars.count() == 5
    meta = card.locator(".meta").inner_text()
    assert "request id" in meta
    assert "Server-Timing" in meta
    assert "shapes-classifier v1" in meta
    card.screenshot(path=screenshots / "playground-classify.png")
    assert browser.outside == []


@pytest.mark.parametrize(("task", "caption"), [("segment", "pet red"), ("explain", "star (")])
def test_the_mask_and_the_heat_map_load(browser: Browser, screenshots: Path, task: str, caption: str) -> None:
    open_playground(browser)
    card = drop(browser, task, "star.jpg")
    answer = card.locator("img.answer")
    browser.page.wait_for_function("image => image.complete", arg=answer.element_handle())
    assert answer.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [141, 135]
    assert caption in card.locator(".caption").inner_text()
    card.screenshot(path=screenshots / f"playground-{task}.png")
    assert browser.outside == []
    assert browser.console_errors == []


def test_a_model_without_a_heatmap_is_not_offered_to_explain(browser: Browser) -> None:
    page = browser.page
    open_playground(browser)
    page.check("input[name=task][value=explain]")
    offered = page.locator("#model option").evaluate_all("options => options.map(option => option.value)")
    assert offered == ["", "shapes-classifier", "shapes-classifier-int8"]


def test_behind_a_key_the_page_says_so_then_works_with_the_key_typed(
    started_chromium: playwright.Browser, bundled_guarded_server: LiveServer
) -> None:
    browser = open_page(started_chromium, bundled_guarded_server)
    page = browser.page
    page.goto(f"{bundled_guarded_server.url}/")
    status = page.locator("#status.error")
    status.wait_for()
    assert "401 unauthorized" in status.inner_text()
    page.fill("#api-key", BUNDLED_KEYS["api"])
    page.locator("#api-key").dispatch_event("change")
    models_loaded(browser)
    card = drop(browser, "classify", "star.jpg")
    assert card.locator(".bars li").first.get_attribute("data-label") == "star"
    assert browser.outside == []
