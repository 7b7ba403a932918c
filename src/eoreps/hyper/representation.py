"""A trained hyper-representation on disk, and what it does: embed weights, decode latents.

A representation directory (written by :func:`eoreps.hyper.train.fit`) holds::

    hyper.json            fit configuration, architecture, parameter order, split seed/fractions
    model.safetensors     autoencoder weights + token scaler statistics (``scaler.mean``/``scaler.std``)
    splits.csv            model_id -> train/val/test of the zoo it was trained on
    checkpoints/          Lightning checkpoints (``last.ckpt``) for resuming
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from eoreps.errors import DataError
from eoreps.hyper.align import match
from eoreps.hyper.augment import Permuter
from eoreps.hyper.autoencoder import HyperAutoencoder, ModelConfig
from eoreps.hyper.tokens import Tokenizer, TokenScaler
from eoreps.io import read_json


class Representation:
    """Tokenizer + scaler + autoencoder of a representation directory (eval mode)."""

    def __init__(self, meta: dict[str, Any], tokenizer: Tokenizer, scaler: TokenScaler, net: HyperAutoencoder,
                 root: Path | None = None, reference: torch.Tensor | None = None) -> None:
        self.meta, self.tokenizer, self.scaler, self.net, self.root = (
            meta,
            tokenizer,
            scaler,
            net.eval(),
            root,
        )
        self.reference = reference  # (D,) unit order models are matched to before encoding (``--align``)

    @property
    def bf16(self) -> bool:
        return self.meta.get("config", {}).get("precision", "bf16") == "bf16"

    @property
    def canonical_input(self) -> bool:
        """Whether the encoder was trained on (and so embeds) models in canonical unit order."""
        return bool(self.meta.get("augment", {}).get("canonical_input", False))

    @property
    def latent_dim(self) -> int:
        return self.net.cfg.latent_dim

    @property
    def param_order(self) -> list[tuple[str, tuple[int, ...]]]:
        """The parameter order of the architecture the representation was trained on."""
        return self.tokenizer.param_order

    def check_decodable(self) -> None:
        """Raise :class:`DataError` when the representation's codes do not decode to weights (``hyper
        sample`` calls it before any work); per-neuron representations always decode."""

    def check_compatible(self, param_order: list[tuple[str, tuple[int, ...]]], where: str) -> None:
        """Raise :class:`DataError` unless ``param_order`` is the one the representation was trained on."""
        want = [(k, tuple(s)) for k, s in self.param_order]
        got = [(k, tuple(int(v) for v in s)) for k, s in param_order]
        if want != got:
            raise DataError(
                f"{where}: its architecture ({len(got)} tensors, {sum(_n(s) for _, s in got)} params) "
                f"differs from the one the representation was trained on "
                f"({self.meta.get('architecture')}); use a zoo of the same architecture"
            )

    @torch.no_grad()
    def embed(self, weights: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, D) flat weights -> (N, latent) float32 embeddings z (no augmentation).

        Models are first put in the unit order the encoder was trained on: matched to the reference
        (``--align``), canonical (``--canonical-input``) or as given.
        """
        return self.embed_blocks(weights, batch_size)[0]

    @torch.no_grad()
    def embed_blocks(self, weights: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) flat weights -> ``(z (N, latent), blocks (N, enc_layers * d_model))``, float32; see
        :meth:`HyperAutoencoder.encode_blocks` for the multi-block readout."""
        zs, bs = [], []
        permuter = Permuter(self.tokenizer)
        for s in range(0, len(weights), batch_size):
            w = weights[s:s + batch_size].float()
            if self.reference is not None:
                w = match(permuter, self.reference, w)
            elif self.canonical_input:
                w = permuter.canonical(w)
            tok = self.scaler.transform(self.tokenizer.tokenize(w))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                z, b = self.net.encode_blocks(tok)
            zs.append(z.float())
            bs.append(b.float())
        if not zs:
            cfg = self.net.cfg
            return torch.empty(0, self.latent_dim), torch.empty(0, cfg.enc_layers * cfg.d_model)
        return torch.cat(zs), torch.cat(bs)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, latent) -> (N, D) flat weights."""
        out = []
        for s in range(0, len(z), batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                tok = self.net.decode(z[s:s + batch_size].float()).float()
            out.append(self.tokenizer.detokenize(self.scaler.inverse(tok)))
        return torch.cat(out) if out else torch.empty(0, self.tokenizer.num_params)

    def codes(self, weights: torch.Tensor) -> torch.Tensor:
        """(N, D) -> the codes ``hyper sample`` fits its density on (here the embeddings z; a windowed
        representation returns the sequence of its window codes)."""
        return self.embed(weights)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`codes`: (N, code size) -> (N, D) flat weights."""
        return self.decode(codes)

    def splits(self) -> dict[int, str]:
        """model_id -> split of the zoo the representation was trained on."""
        if self.root is None or not (self.root / "splits.csv").is_file():
            return {}
        df = pd.read_csv(self.root / "splits.csv")
        return {int(m): str(s) for m, s in zip(df["model_id"], df["split"], strict=True)}


def _n(shape: tuple[int, ...]) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n


def load_representation(root: str | Path) -> Representation:
    """Load a representation directory; a missing or corrupt one is a one-line :class:`DataError`."""
    root = Path(root)
    if not (root / "hyper.json").is_file() or not (root / "model.safetensors").is_file():
        raise DataError(f"{root}: not a representation directory (needs hyper.json and model.safetensors); "
                        f"train one with 'eoreps hyper fit --zoo ZOO --out {root}'")
    meta = read_json(root / "hyper.json")
    try:
        state = load_file(str(root / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{root / 'model.safetensors'}: unreadable ({e}); refit the representation") from None
    if meta.get("tokenizer") == "window":
        from eoreps.hyper.window_representation import load_window_representation

        return load_window_representation(root, meta, state)
    tok = Tokenizer([(k, tuple(s)) for k, s in meta["param_order"]])
    scaler = TokenScaler.from_state_dict(
        {"mean": state.pop("scaler.mean"), "std": state.pop("scaler.std")}, tok
    )
    reference = state.pop("align.reference", None)
    if reference is not None and tuple(reference.shape) != (tok.num_params,):
        raise DataError(
            f"{root / 'model.safetensors'}: its align.reference has shape {tuple(reference.shape)}, "
            f"the architecture has {tok.num_params} parameters; refit the representation"
        )
    # representations written before token statistics existed were trained without them
    net = HyperAutoencoder(
        tok.width, tok.positions, ModelConfig(**{"token_stats": False, **meta["model"]}), tok.mask
    )
    net.load_state_dict(state)
    return Representation(meta, tok, scaler, net, root, reference)
