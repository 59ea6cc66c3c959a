"""Headless Chromium for the browser tests: Debian's `chromium` driven by Playwright's Python driver
(Playwright never downloads a browser). The suite installs nothing: the test command in the README (and
`.ci/run`, which runs it verbatim) installs chromium and a CJK font with apt-get first."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")  # the page is in Chinese
INSTALL = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-wqy-zenhei"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def ensure_chromium() -> Path:
    """Debian's chromium and a CJK font, or a failure that names the command installing them."""
    missing = [str(p) for p in (CHROMIUM, CJK_FONT) if not p.exists()]
    if missing:
        pytest.fail(f"the browser tests need {' and '.join(missing)}: install them first, as root, with\n    {INSTALL}\n(the first part of the README's test command and of .ci/run)", pytrace=False)
    return CHROMIUM


def launch(playwright, executable: Path):
    return playwright.chromium.launch(executable_path=str(executable), headless=True, args=LAUNCH_ARGS)
