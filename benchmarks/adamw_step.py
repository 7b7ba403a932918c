"""One AdamW step: torch's default loop vs ``foreach`` vs the fused kernel (:func:`eoreps.optim.adamw`).

Times ``optimizer.step()`` alone, round-robin over the three implementations (same parameters, fixed random
gradients), median of ``--repeats`` after a warm-up, for two parameter sets: ResNet-18 with 12 input bands
(11.2 M parameters, the SimCLR benchmark's backbone) and the windowed hyper-representation's autoencoder at
its defaults for a ``cnn-small`` tokenizer (d_model 64, 2 blocks; many small tensors). Prints milliseconds
per step and the ratio to the loop; ``--json`` keeps them with the CPU. Usage::

    python benchmarks/adamw_step.py --threads 2 --repeats 15 --json OUT.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

IMPLEMENTATIONS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def parameter_sets() -> dict[str, list[torch.nn.Parameter]]:
    """The parameters timed, by name."""
    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.hyper.window_autoencoder import WindowAutoencoder
    from eoreps.hyper.window_tokens import WindowTokenizer
    from eoreps.models import create_backbone

    resnet = create_backbone("timm:resnet18", in_chans=12)
    small = create_backbone("cnn-small", in_chans=12)  # the EO zoos' members: what the tokens describe
    order = [(k, tuple(v.shape)) for k, v in small.state_dict().items() if v.is_floating_point()]
    tok = WindowTokenizer(order, 64, chains=[])
    cfg = ModelConfig(d_model=64, n_heads=2, enc_layers=2, dec_layers=2, latent_dim=32, proj_dim=32)
    hyper = WindowAutoencoder(tok.width, tok.table_sizes, cfg)
    return {name: [p for p in m.parameters() if p.requires_grad]
            for name, m in (("resnet18", resnet), ("window-autoencoder", hyper))}


def time_steps(params: list[torch.nn.Parameter], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median milliseconds of one ``step()`` per implementation, timed round-robin."""
    g = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)
    opts = {k: torch.optim.AdamW(params, lr=1e-6, **kw) for k, kw in IMPLEMENTATIONS.items()}
    times: dict[str, list[float]] = {k: [] for k in opts}
    for i in range(warmup + repeats):
        for k, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            if i >= warmup:
                times[k].append(1000 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.json:
        from eoreps.io import check_out_file

        check_out_file(args.json, "--json")  # before any timing
    torch.set_num_threads(args.threads)
    from eoreps.optim import adamw
    from eoreps.precision import cpu_summary

    rows = []
    for name, params in parameter_sets().items():
        ms = time_steps(params, args.repeats)
        rows.append({"params": name, "n_params": sum(p.numel() for p in params), "n_tensors": len(params),
                     "ms": {k: round(v, 3) for k, v in ms.items()},
                     "vs_loop": {k: round(ms["loop"] / v, 2) for k, v in ms.items()},
                     "eoreps_adamw_fused": bool(adamw(params, lr=1e-6).defaults["fused"])})
        print(f"{name:20s} {rows[-1]['n_params']:>10,d} params in {len(params):3d} tensors: "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()), flush=True)
    if args.json:
        from eoreps.io import write_json

        write_json(args.json, {"command": "python " + " ".join(sys.argv), "cpu": cpu_summary(),
                               "threads": args.threads, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    from eoreps.errors import EoRepsError

    try:
        main()
    except EoRepsError as e:  # an output path it cannot write: one line
        print(f"adamw_step: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
