"""Lightning module of hyper-representation learning (two augmented views -> loss)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import lightning as L
import torch

from eoreps.hyper.augment import AugmentConfig, Permuter, two_views
from eoreps.hyper.autoencoder import HyperAutoencoder, ModelConfig
from eoreps.hyper.functional import FunctionalLoss
from eoreps.hyper.losses import HyperLoss
from eoreps.hyper.tokens import Tokenizer, TokenScaler
from eoreps.optim import adamw
from eoreps.zoo.architectures import make_arch


class HyperModule(L.LightningModule):
    """Trains :class:`HyperAutoencoder` on batches of flat weights (B, D).

    Each step draws two views (permutation, noise, erasing), encodes both in one pass of 2B samples,
    and minimises ``gamma * NT-Xent + (1 - gamma) * (MSE + functional * F)``, where ``F`` is the optional
    functional reconstruction loss (:mod:`eoreps.hyper.functional`; needs ``arch``, ``activations`` and
    ``probe_images``, and batches ``(weights, activation index)``). The token scaler's statistics are
    buffers, so a checkpoint holds everything needed to embed and decode.
    """

    def __init__(self, param_order: list[list[Any]], model: dict[str, Any], augment: dict[str, Any],
                 gamma: float = 0.1, temperature: float = 0.1, lr: float = 3e-4, weight_decay: float = 1e-4,
                 warmup_fraction: float = 0.05, scaler_mean: torch.Tensor | None = None,
                 scaler_std: torch.Tensor | None = None, functional: float = 0.0, functional_images: int = 64,
                 arch: dict[str, Any] | None = None, activations: list[str] | None = None,
                 probe_images: torch.Tensor | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["scaler_mean", "scaler_std", "probe_images"])
        self.tokenizer = Tokenizer([(k, tuple(s)) for k, s in param_order])
        t = self.tokenizer
        self.register_buffer(
            "scaler_mean", scaler_mean if scaler_mean is not None else torch.zeros(t.n_tokens, t.width)
        )
        self.register_buffer(
            "scaler_std", scaler_std if scaler_std is not None else torch.ones(t.n_tokens, t.width)
        )
        self.net = HyperAutoencoder(t.width, t.positions, ModelConfig(**model), t.mask)
        self.loss_fn = HyperLoss(gamma, temperature)
        self.augment_cfg = AugmentConfig(**augment)
        self.permuter = Permuter(t)
        self.functional_loss: FunctionalLoss | None = None
        if functional > 0:
            if arch is None or activations is None or probe_images is None:
                raise ValueError("functional > 0 needs arch, activations and probe_images")
            net = make_arch(arch["name"], tuple(arch["in_shape"]), int(arch["num_classes"]))
            self.functional_loss = FunctionalLoss(net, probe_images, activations, functional_images)

    @property
    def scaler(self) -> TokenScaler:
        return TokenScaler(self.scaler_mean, self.scaler_std, self.tokenizer.mask)

    def _step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        weights = batch[0]
        v1, t1, v2, t2 = two_views(
            weights.float().cpu(), self.tokenizer, self.scaler, self.permuter, self.augment_cfg
        )
        B = v1.shape[0]
        z, rec, proj = self.net(torch.cat([v1, v2]).to(self.device))
        parts = self.loss_fn(proj[:B], proj[B:], rec[:B], t1.to(self.device), rec[B:], t2.to(self.device),
                             self.tokenizer.mask.to(self.device))
        out = {"loss": parts.total, "contrastive": parts.contrastive, "reconstruction": parts.reconstruction}
        if self.functional_loss is not None:
            if len(batch) < 2:
                raise ValueError("the functional loss needs batches of (weights, activation index)")
            decoded = self.tokenizer.detokenize(self.scaler.inverse(rec.float()))  # (2B, D) raw weights
            f = self.functional_loss(decoded, weights.float().to(self.device), batch[1].to(self.device))
            out["loss"] = out["loss"] + (1.0 - self.hparams.gamma) * self.hparams.functional * f
            out["functional"] = f.detach()
        return out

    @staticmethod
    def batch_size_of(batch: Any) -> int:
        """Models in a batch (what the step's logged means are weighted by)."""
        return int(batch[0].shape[0])

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        out = self._step(batch)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, on_step=True, on_epoch=True,
                      batch_size=self.batch_size_of(batch))
        return out["loss"]

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        out = self._step(batch)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, prog_bar=False, on_epoch=True,
                      batch_size=self.batch_size_of(batch))

    def configure_optimizers(self) -> Any:
        opt = adamw(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                    trainer=self._trainer)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = max(1, int(self.hparams.warmup_fraction * total))

        def lam(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def module_kwargs(param_order: list[list[Any]], model: ModelConfig, augment: AugmentConfig, gamma: float,
                  temperature: float, lr: float, weight_decay: float, functional: float = 0.0,
                  functional_images: int = 64) -> dict[str, Any]:
    """Constructor arguments of :class:`HyperModule` (everything but the scaler and the functional loss's
    architecture, activations and probe images)."""
    return {"param_order": param_order, "model": model.to_dict(), "augment": asdict(augment), "gamma": gamma,
            "temperature": temperature, "lr": lr, "weight_decay": weight_decay, "functional": functional,
            "functional_images": functional_images}
