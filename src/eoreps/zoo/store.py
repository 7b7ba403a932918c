"""On-disk zoo format: safetensors shards + parquet index + checksums; atomic, resumable writes.

Layout of a zoo directory::

    zoo.json                       manifest (format version, architecture, parameter order, dataset,
                                   grid, build options, chunks = lists of model_ids)
    shards/c00003-e012.safetensors weights of chunk 3 after epoch 12:
                                     weights  (n, D) float32, rows in ``model_id`` order of the chunk,
                                              columns in the manifest's ``param_order``
                                     model_id (n,)   int64
                                   metadata["rows"]: JSON list of the n rows of properties
    checksums.json                 {shard file name: sha256 hex}
    state/c00003.safetensors       resume state of an unfinished chunk (removed when it finishes)
    index.parquet, index.csv       one row per (model, epoch): model_id, epoch, the generating factors,
                                   train/val/test loss and accuracy, ggap, shard, row

Every file is written to a temporary name and renamed (a kill never leaves half a file); a shard's
checksum is recorded after the shard and verified whenever it is read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from eoreps.digest import file_sha256
from eoreps.errors import DataError
from eoreps.io import atomic_path, read_json, write_json

FORMAT_VERSION = 1


def shard_name(chunk: int, epoch: int) -> str:
    """File name of the shard of ``chunk`` after ``epoch``."""
    return f"c{chunk:05d}-e{epoch:03d}.safetensors"


sha256_file = file_sha256  # the name this module exported before eoreps.digest


class ZooStore:
    """Reads and writes one zoo directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.shards = self.root / "shards"
        self.state_dir = self.root / "state"
        self._checksums: dict[str, str] | None = None

    # ---------------------------------------------------------------- manifest
    @property
    def manifest_path(self) -> Path:
        return self.root / "zoo.json"

    def exists(self) -> bool:
        """True when a manifest is present."""
        return self.manifest_path.is_file()

    def remove_partial_writes(self) -> list[Path]:
        """Delete the temporary files of writes a killed build left unfinished (``.NAME.*.tmp`` beside
        the manifest, shards and resume states; the files they were to replace are intact). Returns them."""
        stale = [p for d in (self.root, self.shards, self.state_dir) if d.is_dir() for p in d.glob(".*.tmp")]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def read_manifest(self) -> dict[str, Any]:
        """The manifest; a missing one is a one-line :class:`DataError`."""
        if not self.exists():
            raise DataError(
                f"{self.root}: not a zoo directory (no zoo.json); build one with 'eoreps zoo build'"
            )
        m = read_json(self.manifest_path)
        if m.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{self.manifest_path}: zoo format {m.get('format_version')} unsupported "
                            f"(this eoreps reads {FORMAT_VERSION}); rebuild the zoo")
        return m

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write the manifest atomically."""
        write_json(self.manifest_path, {"format_version": FORMAT_VERSION, **manifest})

    # --------------------------------------------------------------- checksums
    def checksums(self) -> dict[str, str]:
        if self._checksums is None:
            p = self.root / "checksums.json"
            self._checksums = read_json(p) if p.is_file() else {}
        return self._checksums

    def _record_checksum(self, name: str, digest: str) -> None:
        sums = self.checksums()
        sums[name] = digest
        write_json(self.root / "checksums.json", sums)

    def verify_shard(self, name: str) -> bool:
        """True when the shard exists and matches its recorded checksum."""
        p = self.shards / name
        want = self.checksums().get(name)
        return p.is_file() and want is not None and sha256_file(p) == want

    def check_shard(self, name: str) -> None:
        """Raise a one-line :class:`DataError` naming the shard if it is missing or corrupt."""
        p = self.shards / name
        if not p.is_file():
            raise DataError(
                f"{p}: shard missing; rerun 'eoreps zoo build' with the same options to rebuild it"
            )
        want = self.checksums().get(name)
        if want is None:
            raise DataError(
                f"{p}: shard has no recorded checksum (build interrupted); rerun 'eoreps zoo build' "
                f"with the same options to finish it"
            )
        got = sha256_file(p)
        if got != want:
            raise DataError(f"{p}: shard is corrupt (sha256 {got[:12]}... != recorded {want[:12]}...); rerun "
                            f"'eoreps zoo build' with the same options to rebuild it")

    # ------------------------------------------------------------------ shards
    def write_shard(self, chunk: int, epoch: int, model_ids: list[int], weights: torch.Tensor,
                    rows: list[dict[str, Any]]) -> str:
        """Write one shard atomically and record its checksum; returns its file name."""
        name = shard_name(chunk, epoch)
        self.shards.mkdir(parents=True, exist_ok=True)
        tensors = {
            "weights": weights.contiguous().float(),
            "model_id": torch.tensor(model_ids, dtype=torch.int64),
        }
        meta = {"chunk": str(chunk), "epoch": str(epoch), "rows": json.dumps(rows)}
        with atomic_path(self.shards / name) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        self._record_checksum(name, sha256_file(self.shards / name))
        return name

    def read_shard(self, name: str, verify: bool = True) -> dict[str, torch.Tensor]:
        """Tensors of one shard (checksum verified first unless ``verify=False``)."""
        if verify:
            self.check_shard(name)
        try:
            return load_file(str(self.shards / name))
        except (SafetensorError, OSError, ValueError) as e:
            raise DataError(
                f"{self.shards / name}: unreadable shard ({e}); rerun 'eoreps zoo build' with the same "
                f"options to rebuild it"
            ) from None

    def shard_rows(self, name: str) -> list[dict[str, Any]]:
        """The property rows stored in a shard's metadata."""
        from safetensors import safe_open

        try:
            with safe_open(str(self.shards / name), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError) as e:
            raise DataError(
                f"{self.shards / name}: unreadable shard ({e}); rerun 'eoreps zoo build'"
            ) from None
        return json.loads(meta.get("rows", "[]"))

    # ------------------------------------------------------------- resume state
    def save_state(self, chunk: int, state: dict[str, torch.Tensor]) -> None:
        """Atomically save a chunk's resume state."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.state_dir / f"c{chunk:05d}.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))

    def load_state(self, chunk: int) -> dict[str, torch.Tensor] | None:
        """A chunk's resume state, or None (absent or unreadable: the chunk restarts from scratch)."""
        p = self.state_dir / f"c{chunk:05d}.safetensors"
        if not p.is_file():
            return None
        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError):
            return None

    def clear_state(self, chunk: int) -> None:
        """Remove a finished chunk's resume state."""
        (self.state_dir / f"c{chunk:05d}.safetensors").unlink(missing_ok=True)

    def completed_epochs(self, chunk: int, epochs: int) -> int:
        """Number of leading epochs (0..epochs) of ``chunk`` whose shards are present and valid."""
        for e in range(epochs + 1):
            if not self.verify_shard(shard_name(chunk, e)):
                return e
        return epochs + 1

    # ------------------------------------------------------------------ index
    def write_index(self, n_chunks: int, epochs: int, names: list[str] | None = None) -> pd.DataFrame:
        """Collect the rows of every shard (chunks 0..n_chunks-1 x epochs 0..epochs, or ``names``) into
        ``index.parquet`` (+ ``index.csv``), atomically."""
        frames = []
        if names is None:
            names = [shard_name(c, e) for c in range(n_chunks) for e in range(epochs + 1)]
        for name in names:
            self.check_shard(name)
            rows = self.shard_rows(name)
            for r, row in enumerate(rows):
                row.update(shard=name, row=r)
            frames.extend(rows)
        df = pd.DataFrame(frames).sort_values(["model_id", "epoch"]).reset_index(drop=True)
        with atomic_path(self.root / "index.parquet") as tmp:
            df.to_parquet(tmp, index=False)
        with atomic_path(self.root / "index.csv") as tmp:
            df.to_csv(tmp, index=False)
        return df

    def read_index(self) -> pd.DataFrame:
        """The index table (one row per model and epoch)."""
        p = self.root / "index.parquet"
        if not p.is_file():
            raise DataError(
                f"{p}: index missing (build unfinished); rerun 'eoreps zoo build' with the same options"
            )
        try:
            return pd.read_parquet(p)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise DataError(f"{p}: unreadable index ({type(e).__name__}); rerun 'eoreps zoo build'") from None


def param_order_of(manifest: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """``[(key, shape), ...]`` from a manifest."""
    return [(k, tuple(s)) for k, s in manifest["param_order"]]


def num_params_of(manifest: dict[str, Any]) -> int:
    """D, the length of one member's weight vector."""
    return sum(math.prod(s) for _, s in param_order_of(manifest))
