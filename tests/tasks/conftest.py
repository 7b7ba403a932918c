"""One torch thread in these tests: they are tiny, and on a shared, oversubscribed 2-core machine a
second thread mostly spins (measured: the same test ran several times slower with 2 threads)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(_torch_threads):
    import torch

    torch.set_num_threads(1)
    yield
