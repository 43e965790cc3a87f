"""One intra-op thread for these tests.

The models here are tiny: a second thread buys nothing, and when other processes share the
cores (pytest-xdist, a docs build) OpenMP threads waiting on each other made single tests up to
30x slower. The setting is restored after each module, so other test folders keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
