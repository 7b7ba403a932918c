"""Streaming many epochs keeps the mapped chunk files bounded (issue 22: pretraining RSS flat in archive
size).

LitData maps the chunk files it reads; each epoch builds a new reader and, before
:meth:`eoreps.data.datasets.packed.PackedStream.release_chunk_maps`, the old ones kept their maps (and the
pages they touched, counted in RSS) for up to 10 epochs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from make_packed import make_packed  # noqa: E402

from eoreps.data.datasets.packed import PackedDataset  # noqa: E402
from eoreps.ssl.data import _StreamLoader  # noqa: E402

_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def mapped_chunks(split_dir: Path) -> list[str]:
    """This process's mappings (one entry each) of ``split_dir``'s chunk files (``/proc/self/maps``)."""
    prefix = str(split_dir.resolve()) + "/chunk-"
    with open("/proc/self/maps") as f:
        paths = [line.split()[-1] for line in f if _MAPPING.match(line)]
    return [p for p in paths if p.startswith(prefix)]


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    return make_packed(tmp_path_factory.mktemp("maps") / "pack", n=120, chunk_bytes="200KB")


def test_epochs_do_not_accumulate_chunk_maps(pack):
    split = pack / "train"
    assert len(list(split.glob("chunk-*.bin"))) > 8  # more chunks than LitData's window of 4 maps
    stream = PackedDataset(pack, "train").stream(shuffle=True, seed=0, crop=16, keys=("s2", "s1"))
    loader = _StreamLoader(stream, batch_size=8, num_workers=0, drop_last=True)
    most = 0
    for _ in range(4):  # before the fix: 4, 7, 10, 13 chunk files still mapped after the epochs
        for i, batch in enumerate(loader):
            assert batch["s2"].shape[-1] == 16
            if i == 2:
                most = max(most, len(mapped_chunks(split)))
        assert mapped_chunks(split) == [], "an ended epoch still maps chunk files"
    assert 1 <= most <= 4  # the stream does map its chunks, at most LitData's window of them at a time
