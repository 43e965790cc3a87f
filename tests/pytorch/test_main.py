"""``python -m snippets.pytorch`` runs every demo and finishes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from snippets.pytorch import DEMOS

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_snippets_pytorch_runs_every_demo() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snippets.pytorch"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for demo in DEMOS:
        assert f"=== {demo.__name__} " in proc.stdout
    assert "all demos done" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_unknown_demo_name_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snippets.pytorch", "no_such_demo"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "no_such_demo" in proc.stderr
