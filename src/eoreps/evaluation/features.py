"""Frozen-encoder features: extracted once per (encoder weights, data, split, normalisation) and cached.

Linear probes and kNN on a frozen encoder only need its pooled features, so they are computed once
for the whole split and every label fraction and seed indexes them. On disk they live in
``<cache>/features/<key>.npy`` (written atomically), where ``key`` hashes

* the encoder's identity: SHA-256 of each backbone file (so retrained weights never hit stale features),
  or architecture + seed for random initialisations;
* the data fingerprint (dataset spec, task, modalities, resize, limits) and the split;
* a digest of the normalisation statistics applied to the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eoreps.digest import digest
from eoreps.io import atomic_path
from eoreps.progress import progress

Inputs = dict[str, torch.Tensor]  # modality -> (N, ...) normalised tensors

@torch.no_grad()
def extract_features(encoder: nn.Module, inputs: dict[str, torch.Tensor], batch_size: int = 256,
                     desc: str = "features", precision: str = "fp32") -> torch.Tensor:
    """Pooled features of every sample, encoder in eval mode.

    Args:
        encoder: batch dict -> ``(B, D)``.
        inputs: modality -> ``(N, C, H, W)`` / ``(N, C)`` normalised tensors.
        batch_size: samples per forward pass.
        precision: ``fp32`` or ``bf16`` (forward passes under CPU bf16 autocast).

    Returns:
        ``(N, D)`` float32.
    """
    was_training = encoder.training
    encoder.eval()
    n = int(next(iter(inputs.values())).shape[0])
    out = []
    for s in progress(
        range(0, n, batch_size), desc=desc, total=(n + batch_size - 1) // batch_size, unit="batch"
    ):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out.append(encoder({m: x[s:s + batch_size] for m, x in inputs.items()}).float())
    encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, getattr(encoder, "num_features", 0))


def cache_key(parts: dict[str, Any]) -> str:
    """Stable hash of a JSON-able description."""
    return digest(parts, 24)


def cached_features(encoder: nn.Module, inputs: Inputs | Callable[[], Inputs], key: dict[str, Any],
                    cache_dir: str | Path | None, batch_size: int = 256,
                    precision: str = "fp32", n: int | None = None) -> torch.Tensor:
    """:func:`extract_features`, read from / written to ``cache_dir/features/<hash of key>.npy``.

    ``key`` must identify the encoder weights, the data split and the normalisation (see the module
    docstring); ``cache_dir=None`` disables caching. A corrupt cache file is recomputed. bf16 features are
    cached apart from fp32 ones (``precision`` joins the key; fp32 keys are unchanged). ``inputs`` may be a
    function returning them, called only when the features are not cached (then the caller builds no
    normalised copy for a cache hit); ``n``: the number of samples, which a cached file must have (default:
    the inputs'; give it with a function, else the function is called to count them).
    """
    if precision != "fp32":
        key = {**key, "precision": precision}

    def given() -> Inputs:
        return inputs() if callable(inputs) else inputs

    if cache_dir is None:
        return extract_features(encoder, given(), batch_size, precision=precision)
    path = Path(cache_dir) / "features" / f"{cache_key(key)}.npy"
    if n is None:
        n = int(next(iter(given().values())).shape[0])
    if path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.ndim == 2 and arr.shape[0] == n:
                return torch.from_numpy(arr)
        except (ValueError, OSError, EOFError):
            pass  # corrupt: recompute below
    feats = extract_features(encoder, given(), batch_size, desc=f"features {key.get('split', '')}",
                             precision=precision)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, feats.numpy(), allow_pickle=False)
    return feats
