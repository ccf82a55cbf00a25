"""Debian's headless Chromium driven by Playwright against a live server: one page that may ask the server
alone for anything, and the folder its screenshots go to ($VISION_SCREENSHOTS_DIR, or a temporary one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import LiveServer

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
# The flags that keep Chromium from calling home on a machine without outside network (as root: no sandbox).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Browser:
    """One Chromium page, and every request it tried to send off the server."""

    def __init__(self, page: playwright.Page, server: LiveServer) -> None:
        self.page = page
        self.outside: list[str] = []
        self.console_errors: list[str] = []
        page.context.route("**/*", self._only_the_server)
        page.on(
            "console",
            lambda message: self.console_errors.append(message.text) if message.type == "error" else None,
        )
        self.server = server

    def _only_the_server(self, route: playwright.Route) -> None:
        if urlsplit(route.request.url).netloc == f"127.0.0.1:{self.server.port}":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()


@contextmanager
def chromium() -> Iterator[playwright.Browser]:
    """Chromium, started once per module: one Playwright driver at a time runs in a process."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does, as root)")
    with playwright.sync_playwright() as driver:
        started = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield started
        started.close()


def open_page(started: playwright.Browser, server: LiveServer) -> Browser:
    """A fresh page (its own context) on `server`."""
    return Browser(started.new_page(viewport={"width": 1280, "height": 900}), server)


def screenshot_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("VISION_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
