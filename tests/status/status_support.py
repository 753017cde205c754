"""What the status page tests share: the page's panels as text, a headless Chromium run."""

from __future__ import annotations

import os
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["Panels", "chromium_run", "png_size"]

_CHROMIUM_TIMEOUT = 90.0  # seconds; a cold start on a busy 2-core CI machine is slow


class Panels(HTMLParser):
    """Each ``<section data-panel>``'s text, in page order, and any script or external
    resource on the page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.scripts = 0
        self.external: list[str] = []
        self._current: str | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            value = found.get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if tag == "section":
            self._current = found.get("data-panel") or ""
            self.text.setdefault(self._current, "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.text[self._current] += data + " "


def chromium_run(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a profile and HOME of its own under ``tmp_path``."""
    home = tmp_path / "chromium-home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={home / 'profile'}",
            *args,
        ],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=_CHROMIUM_TIMEOUT,
        check=True,
    )


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header (its IHDR chunk); fails on anything else."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert head[12:16] == b"IHDR", "no IHDR chunk first"
    width, height = struct.unpack(">II", head[16:24])
    return width, height
