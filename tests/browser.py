"""Headless Chromium for the browser tests: Debian's `chromium` (installed here with apt when missing, as CI
runs as root on a fresh machine; Playwright never downloads a browser) driven by Playwright's Python driver."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")  # the page is in Chinese
PACKAGES = ("chromium", "fonts-wqy-zenhei")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def ensure_chromium() -> Path:
    """Debian's chromium and a CJK font, installed with apt-get if they are not there yet."""
    if CHROMIUM.exists() and CJK_FONT.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{CHROMIUM} is missing and there is no apt-get to install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get installed {' '.join(PACKAGES)} but {CHROMIUM} is still missing")
    return CHROMIUM


def launch(playwright, executable: Path):
    return playwright.chromium.launch(executable_path=str(executable), headless=True, args=LAUNCH_ARGS)
