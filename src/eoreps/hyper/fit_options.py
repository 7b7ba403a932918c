"""``FitOptions``: the options of ``eoreps hyper fit``, from which the command's options, ``--help`` and YAML
keys are generated (:mod:`eoreps.cli_config`). They are the flat, user-facing view of
:class:`eoreps.hyper.train.FitConfig` (whose model and augmentation settings are nested dataclasses):
:meth:`FitOptions.to_config` builds it (``--layers`` sets both stacks, ``--latent-dim`` also the projection).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from eoreps.cli_config import opt
from eoreps.precision import keep_request, resolve_config

HYPER_PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class FitOptions:
    """The ``hyper fit`` options (YAML keys = these names; ``zoo``, ``out``, ``seed`` are shared options).

    ``n_heads`` (YAML only): attention heads (default ``d_model // 32``, at least one).
    """

    ERROR_NAMES: ClassVar[dict[str, str]] = {"erase_prob": "erase"}  # AugmentConfig's name of --erase

    epochs: int = opt(30, help="Training epochs over the zoo's training models.")
    batch_size: int = opt(64, help="Models per batch (two views each).")
    lr: float = opt(3e-4, help="AdamW learning rate (warm-up + cosine).")
    gamma: float = opt(0.1, help="Loss weight: gamma*NT-Xent + (1-gamma)*MSE.")
    temperature: float = opt(0.1, help="NT-Xent temperature.")
    precision: str = opt("auto", help="auto (bf16 on CPUs with AMX or AVX512-BF16 where a timed training "
                                      "step is >= 1.05x faster, else fp32), bf16 (autocast) or fp32 "
                                      "(Lightning's bf16-mixed, 32-true also accepted).")
    d_model: int = opt(128, help="Transformer width.")
    layers: int = opt(4, help="Encoder and decoder depth.")
    latent_dim: int = opt(64, help="Size of the embedding z.")
    dropout: float = opt(0.0, help="Dropout in the transformer layers.")
    token_stats: bool = opt(
        True, help="Add each token's weight statistics (mean, std, |w|, max, min, bias) to its embedding."
    )
    noise: float = opt(0.05, help="Additive noise std (standardised units).")
    erase: float = opt(0.1, help="Probability of erasing each token.")
    no_permute: bool = opt(False, help="Disable permutation augmentation.", flag="--no-permute")
    target: str = opt("view", help="Reconstruction target: view (each view's own permuted clean tokens) or "
                                   "canonical (the clean model, hidden units in canonical order).")
    canonical_input: bool = opt(False, help="Encode models in canonical unit order (exactly permutation "
                                            "invariant).", flag="--canonical-input")
    align: bool = opt(
        False,
        help="Weight-match every model to a reference unit order before training (replaces "
        "the permutation augmentation; the setting for 'hyper sample').",
        flag="--align",
    )
    zoo_epochs: list[int] | None = opt(None, help="Train on these checkpoint epochs only, e.g. '15,20,25' "
                                                  "(default: all).", none="")
    zoo_query: str | None = opt(
        None,
        help="Train on the checkpoints matching this pandas query on the zoo index "
        "only, e.g. \"activation == 'relu' and test_acc >= 0.5\" (default: all).",
    )
    functional: float = opt(
        0.0,
        help="Weight of the functional reconstruction loss: KL between the class "
        "distributions of original and decoded models on the zoo's training images "
        "(0 = token MSE only; for generative use, docs/hyper.md).",
    )
    functional_images: int = opt(64, help="Images per step for --functional.")
    tokenizer: str = opt("neuron", help="neuron (one token per neuron, whole model = one sequence) or window "
                                        "(fixed-width tokens of any architecture, trained on windows of "
                                        "--window tokens; docs/hyper.md).")
    window: int = opt(32, help="Tokens per window (--tokenizer window).")
    token_width: int = opt(64, help="Values per token (--tokenizer window).")
    window_data: str = opt("auto", help="--tokenizer window: memory (the zoo's training weights in RAM), "
                                        "stream (each batch reads its window's tensors from the shards: "
                                        "memory flat in the model size) or auto (stream above 256 MiB of "
                                        "weights).")
    window_readout: str = opt("layer", help="--tokenizer window: the 'learned' readout of hyper evaluate: "
                                            "layer (the compression token per layer), mean (over all "
                                            "windows), tokens (per-layer means of the token outputs, "
                                            "SANE's readout) or tokens-spread (those means and the "
                                            "per-layer mean |output|; docs/hyper.md).")
    window_latent: str = opt("window", help="--tokenizer window: the bottleneck: window (a code per window, "
                                            "the compression token) or tokens (a code per weight token, "
                                            "SANE's; read it with --window-readout tokens; cannot be "
                                            "sampled).")
    n_heads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.precision = resolve_config(self, HYPER_PRECISIONS)  # auto: resolved for the CPU
        if self.n_heads is None:
            self.n_heads = max(1, self.d_model // 32)

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: at most 2 epochs and a tiny transformer, except the options in ``keep`` (those the
        user gave; ``--d-model`` also keeps the heads); returns what changed."""
        from eoreps.quick import shrink

        small: dict[str, Any] = {"epochs": lambda v: min(v, 2), "d_model": 32, "n_heads": 2, "layers": 1,
                                 "latent_dim": 8}
        return shrink(self, small, keep={*keep, *(["n_heads"] if "d_model" in keep else [])})

    def to_config(self, zoo: Path, out: Path) -> Any:
        """The :class:`eoreps.hyper.train.FitConfig` of these options."""
        from eoreps.hyper.augment import AugmentConfig
        from eoreps.hyper.autoencoder import ModelConfig
        from eoreps.hyper.train import FitConfig

        model = ModelConfig(d_model=self.d_model, n_heads=int(self.n_heads or 1), enc_layers=self.layers,
                            dec_layers=self.layers, latent_dim=self.latent_dim, proj_dim=self.latent_dim,
                            token_stats=self.token_stats, dropout=self.dropout)
        augment = AugmentConfig(
            permute=not (self.no_permute or self.align),
            noise=self.noise,
            erase_prob=self.erase,
            target=self.target,
            canonical_input=self.canonical_input,
            align=self.align,
        )
        cfg = FitConfig(
            zoo=zoo,
            out=out,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            gamma=self.gamma,
            temperature=self.temperature,
            precision=self.precision,
            seed=self.seed,
            model=model,
            zoo_epochs=self.zoo_epochs,
            zoo_query=self.zoo_query,
            functional=self.functional,
            functional_images=self.functional_images,
            tokenizer=self.tokenizer,
            window=self.window,
            token_width=self.token_width,
            window_data=self.window_data,
            window_readout=self.window_readout,
            window_latent=self.window_latent,
            augment=augment,
        )
        keep_request(self, cfg)  # whether the precision was auto (the record's reason)
        return cfg
