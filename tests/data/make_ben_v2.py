"""Write a tiny, seeded, format-faithful fake of BigEarthNet v2 (reBEN): the package's writer
(:mod:`eoreps.data.reben_writer`, also used by ``benchmarks/stream_scale.py``).

The pixel values are random (not real data). Usage: ``python tests/data/make_ben_v2.py OUT [--seed 0]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eoreps.data.bigearthnet_classes import BEN19_CLASSES as BEN19  # noqa: F401  (kept for importers)
from eoreps.data.reben_writer import S2_GSD, SPLITS, write_ben_v2  # noqa: F401

__all__ = ["BEN19", "S2_GSD", "SPLITS", "write_ben_v2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--flagged", type=int, default=2)
    ap.add_argument("--side", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(write_ben_v2(a.out, a.n, a.flagged, a.side, a.seed))


if __name__ == "__main__":
    main()
