"""Embedding throughput on SimEO (synthetic): the paths of ``eoreps embed`` against the bare forward pass,
same run.

One encoder (``--backbone``, default cnn-small; e.g. ``timm:resnet18``) exported like ``eoreps pretrain``
exports
it (card with the normalisation statistics), S2 patches of a cached SimEO folder:

* ``limit``   -- the backbone's bare forward pass (eval, no grad) on pre-normalised in-memory batches: the
ceiling;
* ``encoders`` -- :meth:`eoreps.ssl.export.Encoders.embed` on raw in-memory batches (normalise as the card
says,
                 stack, forward): what every reader of exported encoders does;
* ``embed``   -- :func:`eoreps.evaluation.embed.run_embed`, the whole ``eoreps embed`` command: the SimEO
folder
                 read through a DataLoader, embeddings and metadata written (thumbnails off).

Throughput is in samples per second; each contender runs ``--repeats`` times round-robin, the median is
reported with its ratio to ``limit``. Usage::

    python benchmarks/embed_throughput.py [--backbone timm:resnet18] [--n 2000] [--batch-size 256] [--threads
    2]
    python benchmarks/embed_throughput.py --quick      # seconds: 200 samples, cnn-tiny
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

CONTENDERS = ("limit", "encoders", "embed")


def export_encoder(backbone: str, folder: Path, s2: torch.Tensor, bands: tuple[str, ...]) -> Path:
    """A randomly initialised ``backbone`` on S2, saved with a card as ``eoreps pretrain`` writes it."""
    from eoreps.models import create_backbone, save_backbone

    kwargs = {"img_size": s2.shape[-1], "patch_size": 4} if backbone.startswith("timm:vit") else {}
    bb = create_backbone(backbone, in_chans=s2.shape[1], **kwargs)
    finite = torch.nan_to_num(s2.float())
    card = {"method": "benchmark", "modalities": ["s2"], "band_names": {"s2": list(bands)},
            "normalization": {"s2": {"mean": finite.mean(dim=(0, 2, 3)).tolist(),
                                     "std": finite.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()}},
            "input": {"stack": ["s2"], "image_size": list(s2.shape[-2:]), "nan_fill": 0.0}}
    save_backbone(bb, folder / "backbone.safetensors", card)
    return folder


def contenders(run: Path, data: str, s2: torch.Tensor, batch: int, out: Path) -> dict[str, Callable[[], int]]:
    """Name -> a function that embeds every sample once and returns the number of samples."""
    from eoreps.evaluation.embed import EmbedConfig, run_embed
    from eoreps.ssl.export import load_encoders

    enc = load_encoders(run)
    key = enc.key("s2")
    normed = enc.normalizer(key)({"s2": s2})["s2"]
    bb = enc[key].eval()

    @torch.no_grad()
    def limit() -> int:
        for i in range(0, len(normed), batch):
            bb(normed[i:i + batch])
        return len(normed)

    def encoders() -> int:
        for i in range(0, len(s2), batch):
            enc.embed({"s2": s2[i:i + batch]}, modality="s2", space="backbone")
        return len(s2)

    def embed() -> int:
        res = run_embed(EmbedConfig(backbone=str(run), data=data, out=str(out), splits=["train"],
                                    space="backbone", batch_size=batch, thumbnails="off"))
        return sum(res.splits.values())

    return {"limit": limit, "encoders": encoders, "embed": embed}


def main() -> None:
    """Run the comparison and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="cnn-small")
    ap.add_argument(
        "--n", type=int, default=2000, help="SimEO patches generated (the train split is embedded)"
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="seconds: 200 SimEO patches, cnn-tiny, batch 64")
    args = ap.parse_args()
    if args.quick:
        args.backbone, args.n, args.batch_size = "cnn-tiny", 200, 64
    torch.set_num_threads(args.threads)
    import os

    os.environ.setdefault("EOREPS_NO_PROGRESS", "1")
    from eoreps.data.simeo.io import cached_simeo
    from eoreps.evaluation.data import load_eval_data

    folder = cached_simeo(args.n, seed=0)
    data = load_eval_data(str(folder), "classify", ["s2"], simeo_n=args.n)
    s2 = data.splits["train"].inputs["s2"].float()
    with tempfile.TemporaryDirectory() as tmp:
        run = export_encoder(args.backbone, Path(tmp) / "run", s2, data.band_names["s2"])
        fns = contenders(run, str(folder), s2, args.batch_size, Path(tmp) / "emb")
        rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        for name in CONTENDERS:  # warm-up
            fns[name]()
        for _ in range(args.repeats):
            for name in CONTENDERS:
                t = time.perf_counter()
                n = fns[name]()
                rates[name].append(n / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"embedding throughput, {args.backbone}, {len(s2)} SimEO (synthetic) S2 patches "
        f"{tuple(s2.shape[1:])}, "
        f"batch {args.batch_size}, {args.threads} threads, median of {args.repeats}"
    )
    print(f"{'contender':<10} {'samples/s':>10} {'vs limit':>9}")
    for name in CONTENDERS:
        print(f"{name:<10} {med[name]:>10.1f} {med[name] / med['limit']:>8.2f}x")


if __name__ == "__main__":
    main()
