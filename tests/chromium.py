"""Debian's chromium for browser tests and benchmarks: where it is, how to start it.

Never a downloaded browser. The flags keep chromium quiet on a machine with no network
(no background requests, no component updates) and let it run as root in a container.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# CHROMIUM_PATH: a browser the machine already has (a hosted runner ships Google Chrome, and
# Ubuntu's `chromium` package is only a snap wrapper); still never a downloaded one.
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip the calling test module without chromium, except under CI, where it must exist."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        raise RuntimeError("CI is set but chromium is missing: .ci/run must install it")
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)
