"""Shared fixtures: one strict build of the site per test session, served on loopback."""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# One built site per pytest-xdist worker: the site_url baked into a build names that worker's
# loopback server, and two workers must never clean and rebuild each other's directory.
BUILD_DIR = ROOT / ".cache" / f"test-site-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op torch thread per test process.

    The tests run as two pytest-xdist workers on two cores, and their tensors are tiny: a second
    OpenMP thread per worker only adds contention (single tests were measured up to 30x slower
    with the default when other processes shared the cores). Results do not depend on it.
    """
    import torch

    torch.set_num_threads(1)


def mkdocs_build(
    site_dir: Path,
    *,
    config: Path = ROOT / "mkdocs.yml",
    site_url: str | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run ``mkdocs build --strict`` in a subprocess; return the completed process."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    if site_url is not None:
        env["SITE_URL"] = site_url
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--clean",
            "--config-file",
            str(config),
            "--site-dir",
            str(site_dir),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site_server() -> Iterator[str]:
    """Serve BUILD_DIR on 127.0.0.1 (the built site, once it exists); yield the base URL."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(BUILD_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def built_site(site_server: str) -> Path:
    """The site built once with --strict, with site_url set to the loopback server.

    Instant navigation needs site_url to match the served origin. A lock serialises the builds
    of parallel workers: they share the notebook cache.
    """
    result = locked_build(BUILD_DIR, site_url=site_server)
    if result.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}")
    return BUILD_DIR


def locked_build(site_dir: Path, site_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Build the real site, one build at a time across xdist workers (they share the notebook
    cache, and mkdocs-jupyter evicts entries a concurrent build has not used yet)."""
    BUILD_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR.parent / "test-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return mkdocs_build(site_dir, site_url=site_url)
