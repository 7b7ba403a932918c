"""Lightning module of the windowed hyper-representation (``hyper fit --tokenizer window``).

Each step takes a batch of flat weights (B, D), draws one random window start for the batch and two views
of that window of every model (a random function-preserving permutation of the chains the window reads,
:func:`eoreps.hyper.window_parts.permuted_tokens`, then noise and token erasing from
:mod:`eoreps.hyper.augment`), encodes both views in one pass and minimises the per-neuron model's loss
(:class:`eoreps.hyper.losses.HyperLoss`: ``gamma * NT-Xent + (1 - gamma) * MSE``). Only ``K`` tokens per
model reach the transformer, so the step's memory does not depend on the model size.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import lightning as L
import torch

from eoreps.hyper.augment import AugmentConfig, add_noise, erase_tokens
from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.losses import HyperLoss
from eoreps.hyper.module import HyperModule
from eoreps.hyper.window_autoencoder import WindowAutoencoder
from eoreps.hyper.window_parts import RawViews, WindowParts, parts_from_flat, permuted_tokens, tokenize_parts
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer


def window_views(weights: torch.Tensor, tok: WindowTokenizer, scaler: TensorScaler, window: int,
                 cfg: AugmentConfig, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, ...]:
    """Two views of one random window, the same for every model of (B, D) weights: ``(view1, target1,
    view2, target2, positions (B, K, 3), mask (B, K, W))``; tokens standardised, targets the views' own
    clean tokens. One window for the whole batch makes the NT-Xent negatives other models at the same
    position: with a window per model they differ by position, and the contrastive term is solved by the
    position embedding alone instead of by what distinguishes the models."""
    start = int(torch.randint(0, tok.n_tokens - window + 1, (1,), generator=generator))
    return parts_views(parts_from_flat(tok, weights, start, window), tok, scaler, cfg, generator)


def parts_views(parts: WindowParts, tok: WindowTokenizer, scaler: TensorScaler, cfg: AugmentConfig,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """:func:`window_views` of the window ``parts`` holds (:mod:`eoreps.hyper.window_parts`): each view a
    permutation of the chains the window reads (per model, batched), then noise and token erasing."""
    s, k, b = parts.start, parts.length, parts.batch
    out: list[torch.Tensor] = []
    for _ in range(2):
        raw = permuted_tokens(tok, parts, generator) if cfg.permute else tokenize_parts(tok, parts)
        out += _augmented(raw, s, tok, scaler, cfg, generator)
    return (*out, *_positions_masks(tok, s, k, b))


def raw_views(raw: RawViews, tok: WindowTokenizer, scaler: TensorScaler, cfg: AugmentConfig,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """:func:`parts_views` of two views already permuted by the loader (:class:`RawViews`): standardised,
    then noise and token erasing."""
    out: list[torch.Tensor] = []
    for view in (raw.view1, raw.view2):
        out += _augmented(view, raw.start, tok, scaler, cfg, generator)
    return (*out, *_positions_masks(tok, raw.start, raw.length, raw.batch))


def _augmented(raw: torch.Tensor, start: int, tok: WindowTokenizer, scaler: TensorScaler, cfg: AugmentConfig,
               generator: torch.Generator | None) -> list[torch.Tensor]:
    """Raw tokens (B, K, W) of the window at ``start`` -> ``[view, clean]``: standardised, then the view
    with noise and erased tokens."""
    k = raw.shape[1]
    ids, m = tok.tensor_ids(start, k), tok.mask[start:start + k]
    clean = scaler.transform(raw, ids, m)
    view = erase_tokens(add_noise(clean, m.expand(raw.shape[0], *m.shape), cfg.noise, generator),
                        cfg.erase_prob, generator)
    return [view, clean]


def _positions_masks(tok: WindowTokenizer, start: int, k: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (B, K, 3) and mask (B, K, W) of the window at ``start``, for ``b`` models."""
    pos, m = tok.positions[start:start + k], tok.mask[start:start + k]
    return pos.expand(b, *pos.shape), m.expand(b, *m.shape)


class WindowModule(L.LightningModule):
    """Trains :class:`WindowAutoencoder` on batches of flat weights (B, D) or of streamed window views
    (:mod:`eoreps.hyper.window_stream`); the scaler statistics are buffers, so a checkpoint holds everything
    needed to embed and decode."""

    # the optimisation and logging of the per-neuron module, unchanged
    configure_optimizers = HyperModule.configure_optimizers
    training_step = HyperModule.training_step
    validation_step = HyperModule.validation_step

    def __init__(self, tokenizer: dict[str, Any], window: int, model: dict[str, Any], augment: dict[str, Any],
                 gamma: float = 0.1, temperature: float = 0.1, lr: float = 3e-4, weight_decay: float = 1e-4,
                 warmup_fraction: float = 0.05, scaler_mean: torch.Tensor | None = None,
                 scaler_std: torch.Tensor | None = None, latent: str = "window") -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["scaler_mean", "scaler_std"])
        self.tokenizer = WindowTokenizer(**tokenizer)
        self.tokenizer.check_window(window)
        self.window = int(window)
        n = len(self.tokenizer.param_order)
        self.register_buffer("scaler_mean", scaler_mean if scaler_mean is not None else torch.zeros(n))
        self.register_buffer("scaler_std", scaler_std if scaler_std is not None else torch.ones(n))
        self.net = WindowAutoencoder(self.tokenizer.width, self.tokenizer.table_sizes, ModelConfig(**model),
                                     latent)
        self.loss_fn = HyperLoss(gamma, temperature)
        self.augment_cfg = AugmentConfig(**augment)

    @property
    def scaler(self) -> TensorScaler:
        return TensorScaler(self.scaler_mean.cpu(), self.scaler_std.cpu())

    @staticmethod
    def batch_size_of(batch: RawViews | tuple[torch.Tensor, ...]) -> int:
        return batch.batch if isinstance(batch, RawViews) else int(batch[0].shape[0])

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Streamed batches (:class:`RawViews`: :mod:`eoreps.hyper.window_stream`) stay on the CPU, where
        :meth:`_step` standardises and augments them (as it builds the views of flat weights)."""
        if isinstance(batch, RawViews):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _step(self, batch: RawViews | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """The loss of a batch of flat weights ``(W (B, D), ...)`` (one random window drawn here) or of
        streamed :class:`RawViews` (window drawn and permuted by the loader)."""
        if isinstance(batch, RawViews):
            views = raw_views(batch, self.tokenizer, self.scaler, self.augment_cfg)
        else:
            views = window_views(batch[0].float().cpu(), self.tokenizer, self.scaler, self.window,
                                 self.augment_cfg)
        v1, t1, v2, t2, pos, mask = views
        B, dev = v1.shape[0], self.device
        pos2, mask2 = torch.cat([pos, pos]).to(dev), torch.cat([mask, mask]).to(dev)
        _, rec, proj = self.net(torch.cat([v1, v2]).to(dev), pos2, mask2)
        parts = self.loss_fn(proj[:B], proj[B:], rec[:B], t1.to(dev), rec[B:], t2.to(dev), mask2)
        return {"loss": parts.total, "contrastive": parts.contrastive, "reconstruction": parts.reconstruction}


def window_module_kwargs(tok: WindowTokenizer, window: int, model: ModelConfig, augment: AugmentConfig,
                         gamma: float, temperature: float, lr: float, weight_decay: float,
                         latent: str = "window") -> dict[str, Any]:
    """Constructor arguments of :class:`WindowModule` (everything but the scaler)."""
    return {"tokenizer": tok.to_dict(), "window": window, "model": model.to_dict(),
            "augment": asdict(augment), "gamma": gamma, "temperature": temperature, "lr": lr,
            "weight_decay": weight_decay, "latent": latent}
