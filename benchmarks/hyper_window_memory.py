"""Peak memory (RSS) of embedding one model with the windowed hyper-representation encoder.

Builds a timm ResNet-18 (11.2 M parameters, BatchNorm included), its window tokenizer and a windowed
autoencoder of the default sizes (untrained: memory and time do not depend on the trained values), and
embeds the model as the mean of its window codes (:class:`eoreps.hyper.window_representation`). Prints the
process's peak RSS before and after embedding; the target (issue 23) is < 2 GB. The per-neuron tokenizer
cannot embed this model at all (BatchNorm, fan-in up to 4,608 padded over one 100k-token sequence).

    python benchmarks/hyper_window_memory.py [--backbone timm:resnet18] [--window 32] [--token-width 64]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.hyper.window_autoencoder import WindowAutoencoder
    from eoreps.hyper.window_representation import WindowRepresentation
    from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer
    from eoreps.models.registry import create_backbone

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="timm:resnet18")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--token-width", type=int, default=64)
    ap.add_argument("--batch-windows", type=int, default=64, help="windows encoded per forward pass")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = create_backbone(args.backbone, in_chans=3)
    sd = net.state_dict()
    del net
    base = peak_rss_mb()
    t0 = time.perf_counter()
    tok = WindowTokenizer.from_state_dict(sd, args.token_width)
    flat = tok.flatten(sd)
    del sd
    scaler = TensorScaler.fit(tok, flat[None])
    ae = WindowAutoencoder(tok.width, tok.table_sizes, ModelConfig())
    meta = {"config": {"precision": "bf16"}}
    rep = WindowRepresentation(meta, tok, scaler, ae, args.window)
    built = peak_rss_mb()
    t1 = time.perf_counter()
    z, _ = rep.embed_blocks(flat[None], batch_size=args.batch_windows)
    t2 = time.perf_counter()
    print(f"{args.backbone}: {tok.num_params:,} values, {tok.n_tokens:,} tokens of width {tok.width}, "
          f"{len(rep.starts):,} windows of {args.window}; z {tuple(z.shape)}")
    print(f"peak RSS: {base:.0f} MB after building the model (baseline), {built:.0f} MB with tokenizer + "
          f"encoder ({t1 - t0:.1f} s), {peak_rss_mb():.0f} MB after embedding ({t2 - t1:.1f} s); "
          f"target < 2048 MB")


if __name__ == "__main__":
    main()
