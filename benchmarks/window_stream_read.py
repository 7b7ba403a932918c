"""Streamed windows: reading only the rows a window's permutations need vs the window's tensors whole
(issue 23, ``hyper fit --tokenizer window --window-data stream``).

Builds :class:`eoreps.hyper.window_stream.WindowViewsDataset` on a zoo (its tokenizer with the chains
``hyper fit`` would verify, permutation on) twice, ``rows_only`` on and off, and times the same batches
(window start + checkpoints, from one seeded :class:`WindowBatchSampler` stream) through both, alternating
the two per repeat; every batch's views are checked equal between the two. Reports the values read per batch
(counted at the shard reader) and the median seconds per batch of each, and their ratio (whole / rows).
The shards are read once before timing, so both sides read from the page cache: the ratio is the copy and
gather work saved, not disk I/O (which would favour reading rows further).

    python benchmarks/window_stream_read.py --zoo ZOO --batches 40 --repeats 5 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch


def _batches(n: int, batch: int, n_starts: int, count: int, seed: int) -> list[tuple[int, tuple[int, ...]]]:
    from eoreps.hyper.window_stream import WindowBatchSampler

    torch.manual_seed(seed)
    out: list[tuple[int, tuple[int, ...]]] = []
    while len(out) < count:
        out += list(WindowBatchSampler(n, batch, n_starts, shuffle=True))
    return out[:count]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--token-width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from eoreps.hyper.window_fit import permutable_chains
    from eoreps.hyper.window_stream import ShardReader, WindowViewsDataset
    from eoreps.hyper.window_tokens import WindowTokenizer
    from eoreps.zoo.modelzoo import ModelZoo

    zoo = ModelZoo(args.zoo)
    tok = WindowTokenizer(zoo.param_order, args.token_width, chains=[])
    tok = WindowTokenizer(tok.param_order, tok.width, chains=permutable_chains(tok, zoo))
    rows = zoo.index.reset_index(drop=True)
    reader = ShardReader(zoo.store, zoo.num_params, rows["shard"].astype(str).tolist())
    counted: list[int] = []
    real = reader.read_into

    def counting(f: Any, shard: str, r: int, o: int, out: torch.Tensor) -> None:
        counted.append(out.numel())
        real(f, shard, r, o, out)

    reader.read_into = counting  # type: ignore[method-assign]
    sets = {name: WindowViewsDataset(tok, args.window, reader, rows, permute=True, rows_only=flag)
            for name, flag in (("rows", True), ("whole", False))}
    batches = _batches(len(rows), min(args.batch_size, len(rows)), tok.n_tokens - args.window + 1,
                       args.batches, seed=0)
    for start, idx in batches:  # warm the page cache; the views of both loaders must agree
        views = []
        for ds in sets.values():
            torch.manual_seed(start)
            views.append(ds[(start, idx)])
        for a, b in zip(views[0].__dict__.values(), views[1].__dict__.values(), strict=True):
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), "rows-only views differ from whole"
    secs: dict[str, list[float]] = {name: [] for name in sets}
    values: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, ds in sets.items():
            counted.clear()
            t = time.perf_counter()
            for start, idx in batches:
                ds[(start, idx)]
            secs[name].append((time.perf_counter() - t) / len(batches))
            values[name] = sum(counted) / len(batches)
    med = {k: statistics.median(v) for k, v in secs.items()}
    out = {"command": "python " + " ".join(sys.argv), "zoo": str(args.zoo), "num_params": zoo.num_params,
           "checkpoints": len(rows), "window": args.window, "token_width": args.token_width,
           "batch_size": args.batch_size, "batches": args.batches, "repeats": args.repeats,
           "threads": args.threads, "chains": len(tok.chains),
           "values_read_per_batch": values, "s_per_batch": secs, "median_s_per_batch": med,
           "speedup_whole_over_rows": med["whole"] / med["rows"],
           "read_ratio_whole_over_rows": values["whole"] / values["rows"]}
    print(f"values read per batch: whole {values['whole']:,.0f}, rows {values['rows']:,.0f} "
          f"({out['read_ratio_whole_over_rows']:.1f}x fewer); median s/batch whole {med['whole']:.4f}, "
          f"rows {med['rows']:.4f}: {out['speedup_whole_over_rows']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
