"""Cost of the pack cache's source stamp (``eoreps.data.pack_cache.cache_key``) on large source trees.

The stamp walks the whole source (size and modification time of every entry, nested ones included) so an
edit inside a sub-folder packs the source again. Baseline, measured in the same run: the former stamp (the
path and its direct entries only).
Trees (empty-content files; only ``stat`` is timed, warm page cache):

* ``flat``: ``--files`` files in folders of 10 (``--files 20000``: 2,000 folders);
* ``bigearthnet``: ``--pairs`` BigEarthNet-v1-like pairs: an S2 patch folder of 12 band tifs + metadata
  json and an S1 patch folder of 2 tifs + json (``--pairs 20000``: 320,000 files in 40,000 folders).

    python benchmarks/pack_stamp.py --files 20000 --pairs 20000 --repeats 5 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def make_flat(root: Path, files: int) -> int:
    """``files`` empty files, 10 per folder; returns the number of files."""
    for i in range(files):
        folder = root / f"d{i // 10:05d}"
        if i % 10 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i % 10}.tif").touch()
    return files


def make_bigearthnet(root: Path, pairs: int) -> int:
    """``pairs`` S2 + S1 patch folders laid out like BigEarthNet v1; returns the number of files."""
    n = 0
    for i in range(pairs):
        s2 = root / "BigEarthNet-v1.0" / f"S2A_MSIL2A_2017_{i:06d}"
        s1 = root / "BigEarthNet-S1-v1.0" / f"S1A_IW_GRDH_2017_{i:06d}"
        s2.mkdir(parents=True)
        s1.mkdir(parents=True)
        for band in S2_BANDS:
            (s2 / f"{s2.name}_{band}.tif").touch()
        for band in ("VV", "VH"):
            (s1 / f"{s1.name}_{band}.tif").touch()
        (s2 / f"{s2.name}_labels_metadata.json").touch()
        (s1 / f"{s1.name}_labels_metadata.json").touch()
        n += 16
    return n


def direct_entries_stamp(path: Path) -> list[Any]:
    """The former stamp (baseline only): name, size and time of ``path`` and of its direct entries."""
    st = path.stat()
    entries = sorted(path.iterdir()) if path.is_dir() else []
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in entries] + [st.st_size, st.st_mtime_ns]


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: the page cache holds the tree's inodes after it
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from eoreps.data.formats import FORMAT_REGISTRY
    from eoreps.data.pack_cache import cache_key
    from eoreps.data.source_stamp import source_stamp

    fmt = FORMAT_REGISTRY.get("simeo")  # given: only the stamp differs between the trees
    rows = []
    for tree, make, size in (("flat", make_flat, args.files), ("bigearthnet", make_bigearthnet, args.pairs)):
        if size <= 0:
            continue
        root = Path(tempfile.mkdtemp(prefix=f"pack_stamp_{tree}_"))
        try:
            files = make(root, size)
            key_s = _median_s(lambda r=root: cache_key(str(r), {}, 0, (), fmt), args.repeats)
            stamp_s = _median_s(lambda r=root: source_stamp(r), args.repeats)
            old_s = _median_s(lambda r=root: direct_entries_stamp(r), args.repeats)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append({"tree": tree, "size": size, "files": files, "cache_key_s": round(key_s, 4),
                     "stamp_s": round(stamp_s, 4), "direct_entries_stamp_s": round(old_s, 4),
                     "ratio_vs_direct_entries": round(stamp_s / max(old_s, 1e-9), 1)})
        print(rows[-1], flush=True)
    out = {"command": "python " + " ".join(sys.argv), "cpu": _cpu(), "repeats": args.repeats,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "statistic": "median wall seconds, warm page cache", "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
