"""Data sets a zoo is trained on, as in-memory tensors (they are small: the zoo trains many models
on little data).

``--dataset`` accepts

* ``digits`` — scikit-learn's handwritten digits (real, 1,797 images, 1 x 8 x 8, ships with sklearn);
* ``simeo`` — SimEO multispectral patches (synthetic, 12 x 32 x 32, 8 classes; NaN no-data filled with
  the band mean, i.e. 0 after normalisation);
* a PATH to an MNIST-style folder or file: idx files (``*-images-idx3-ubyte[.gz]`` with the matching
  ``*-labels-idx1-ubyte[.gz]``), CSV (one row = H*W pixels then the label, optional header, may be
  ``.gz``) or NPZ (``x``/``y`` or ``images``/``labels``, or ``x_train``/``y_train``/``x_test``/``y_test``).
  Files whose name contains ``test`` or ``t10k`` form the test pool, the others the training pool.

Any eoreps single-label classification dataset can be used from Python with
:func:`from_eodataset`.

Splits: the training pool is the training set; validation and test are disjoint parts of the test
pool (``val_fraction`` of it goes to validation). Without a test pool, 20% of the training pool becomes
the test pool first. Images are scaled to [0, 1] (pixels) and normalised per channel with training
statistics.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eoreps.errors import DataError


@dataclass
class ZooData:
    """Train/val/test tensors: ``x_*`` (N, C, H, W) float32 normalised, ``y_*`` (N,) int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    synthetic: bool = False
    source: str = ""

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(v) for v in self.x_train.shape[1:])  # type: ignore[return-value]

    def summary(self) -> dict[str, object]:
        """Sizes and shape, for the zoo manifest."""
        return {"name": self.name, "source": self.source, "synthetic": self.synthetic,
                "in_shape": list(self.in_shape), "num_classes": self.num_classes,
                "n_train": len(self.y_train), "n_val": len(self.y_val), "n_test": len(self.y_test)}


def _finish(name: str, x_pool: np.ndarray, y_pool: np.ndarray, x_test_pool: np.ndarray | None,
            y_test_pool: np.ndarray | None, *, seed: int, val_fraction: float, synthetic: bool,
            source: str, scale: float | None) -> ZooData:
    rng = np.random.default_rng([seed, 11])
    x_pool = x_pool.astype(np.float32)
    if scale:
        x_pool = x_pool / scale
    if x_test_pool is None:
        perm = rng.permutation(len(y_pool))
        n_test = max(1, int(round(0.2 * len(y_pool))))
        x_test_pool, y_test_pool = x_pool[perm[:n_test]], y_pool[perm[:n_test]]
        x_pool, y_pool = x_pool[perm[n_test:]], y_pool[perm[n_test:]]
    else:
        x_test_pool = x_test_pool.astype(np.float32) / scale if scale else x_test_pool.astype(np.float32)
    assert y_test_pool is not None
    perm = rng.permutation(len(y_test_pool))
    n_val = int(round(val_fraction * len(y_test_pool)))
    xv, yv = x_test_pool[perm[:n_val]], y_test_pool[perm[:n_val]]
    xt, yt = x_test_pool[perm[n_val:]], y_test_pool[perm[n_val:]]
    mean = np.nanmean(x_pool, axis=(0, 2, 3), keepdims=True)
    std = np.nanstd(x_pool, axis=(0, 2, 3), keepdims=True) + 1e-6

    def norm(a: np.ndarray) -> torch.Tensor:
        a = (a - mean) / std
        return torch.from_numpy(np.nan_to_num(a, nan=0.0).astype(np.float32))

    k = int(max(y_pool.max(), y_test_pool.max()) + 1)
    return ZooData(name, norm(x_pool), torch.as_tensor(y_pool, dtype=torch.int64), norm(xv),
                   torch.as_tensor(yv, dtype=torch.int64), norm(xt), torch.as_tensor(yt, dtype=torch.int64),
                   k, synthetic, source)


def load_digits(seed: int = 0, val_fraction: float = 0.25) -> ZooData:
    """scikit-learn digits: 1,797 real 8 x 8 images; 20% test pool split into val/test."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x = d.images.reshape(-1, 1, 8, 8)
    return _finish("digits", x, d.target.astype(np.int64), None, None, seed=seed, val_fraction=val_fraction,
                   synthetic=False, source="sklearn.datasets.load_digits", scale=16.0)


def load_simeo(n: int = 3000, seed: int = 0, val_fraction: float = 0.33) -> ZooData:
    """SimEO patches (synthetic): ``n`` patches of 12 x 32 x 32, 8 classes."""
    from eoreps.data.simeo import generate_patches  # lazy: optional part of the package

    d = generate_patches(n, seed)
    x = np.asarray(d["s2"], dtype=np.float32)
    y = np.asarray(d["label"], dtype=np.int64)
    return _finish("simeo", x, y, None, None, seed=seed, val_fraction=val_fraction, synthetic=True,
                   source=f"eoreps.data.simeo.generate_patches({n}, {seed})", scale=None)


def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: not a valid gzip file ({e}); re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number); give idx, csv or npz files")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise DataError(f"{path}: idx element type 0x{dtype_code:02x} unsupported (expected unsigned byte)")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(
            f"{path}: truncated idx file ({data.size} of {int(np.prod(dims))} values); re-download it"
        )
    return data.reshape(dims)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:  # type: ignore[operator]
            text = f.read()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read CSV ({e}); check the file") from None
    lines = text.splitlines()
    skip = 1 if lines and not lines[0].split(",")[0].strip().replace(".", "").isdigit() else 0
    try:
        arr = np.loadtxt(io.StringIO("\n".join(lines[skip:])), delimiter=",", dtype=np.float32)
    except ValueError as e:
        raise DataError(f"{path}: malformed CSV ({e}); expected rows of pixels then the label") from None
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise DataError(f"{path}: expected rows of H*W pixels then the label, got shape {arr.shape}")
    pixels, labels = arr[:, :-1], arr[:, -1].astype(np.int64)
    side = int(round(np.sqrt(pixels.shape[1])))
    if side * side != pixels.shape[1]:
        raise DataError(f"{path}: {pixels.shape[1]} pixels per row is not a square image")
    return pixels.reshape(-1, 1, side, side), labels


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:  # a damaged zip is none of the first two
        raise DataError(f"{path}: not a readable npz ({e})") from None


def _as_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side == x.shape[1]:
            return x.reshape(-1, 1, side, side)
    raise DataError(f"{path}: images of shape {x.shape} are not (N, H, W), (N, C, H, W) or (N, H*W)")


def load_mnist_folder(path: str | Path, seed: int = 0, val_fraction: float = 0.2) -> ZooData:
    """An MNIST-style folder (or single file): idx[.gz], csv[.gz] or npz; see module docstring."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: dataset path not found; give 'digits', 'simeo' or an MNIST-style folder")
    files = sorted(root.iterdir()) if root.is_dir() else [root]
    pools: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "test": []}
    for f in files:
        name = f.name.lower()
        pool = "test" if ("test" in name or "t10k" in name) else "train"
        if "-images-idx" in name or "_images_idx" in name:
            lab = f.parent / f.name.replace("images-idx3", "labels-idx1").replace(
                "images_idx3", "labels_idx1"
            )
            if not lab.exists():
                raise DataError(f"{f}: no matching labels file {lab.name}; put it beside the images")
            x, y = _read_idx(f), _read_idx(lab).astype(np.int64)
            if len(x) != len(y):
                raise DataError(f"{f}: {len(x)} images but {len(y)} labels in {lab.name}")
            pools[pool].append((_as_nchw(x, f), y))
        elif name.endswith((".csv", ".csv.gz")):
            pools[pool].append(_read_csv(f))
        elif name.endswith(".npz"):
            z = _read_npz(f)
            if "x_train" in z:
                pools["train"].append((_as_nchw(z["x_train"], f), z["y_train"].astype(np.int64)))
                if "x_test" in z:
                    pools["test"].append((_as_nchw(z["x_test"], f), z["y_test"].astype(np.int64)))
            else:
                xk = "x" if "x" in z else "images"
                yk = "y" if "y" in z else "labels"
                if xk not in z or yk not in z:
                    raise DataError(
                        f"{f}: npz needs arrays x/y, images/labels or x_train/y_train; has {sorted(z)}"
                    )
                pools[pool].append((_as_nchw(z[xk], f), z[yk].astype(np.int64)))
    if not pools["train"]:
        raise DataError(
            f"{root}: no training images found (idx, csv or npz files whose name lacks 'test'/'t10k')"
        )

    def cat(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        shapes = {a.shape[1:] for a, _ in items}
        if len(shapes) > 1:
            raise DataError(f"{root}: files hold images of different shapes {sorted(shapes)}")
        return np.concatenate([a for a, _ in items]), np.concatenate([b for _, b in items])

    xtr, ytr = cat(pools["train"])
    xte, yte = cat(pools["test"]) if pools["test"] else (None, None)
    if xte is not None and xte.shape[1:] != xtr.shape[1:]:
        raise DataError(
            f"{root}: train images {xtr.shape[1:]} and test images {xte.shape[1:]} differ in shape"
        )
    scale = 255.0 if float(xtr.max()) > 1.0 else None
    return _finish(root.name or "mnist", xtr, ytr, xte, yte, seed=seed, val_fraction=val_fraction,
                   synthetic=False, source=str(root), scale=scale)


def from_eodataset(
    dataset: torch.utils.data.Dataset,
    modality: str,
    name: str = "eodataset",
    seed: int = 0,
    test_dataset: torch.utils.data.Dataset | None = None,
    val_fraction: float = 0.33,
) -> ZooData:
    """A zoo data set from any eoreps single-label dataset (dict samples with ``modality`` and ``label``).

    ``modality`` is the image key to use (e.g. ``"s2"``); NaN no-data is filled with the band mean.
    """
    def stack(ds: torch.utils.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i in range(len(ds)):  # type: ignore[arg-type]
            s = ds[i]
            if modality not in s or "label" not in s:
                raise DataError(
                    f"{name}: sample {i} lacks '{modality}' or 'label'; pick a single-label dataset "
                    f"and one of its image modalities"
                )
            xs.append(np.asarray(s[modality], dtype=np.float32))
            ys.append(int(s["label"]))
        return np.stack(xs), np.asarray(ys, dtype=np.int64)

    x, y = stack(dataset)
    xt, yt = stack(test_dataset) if test_dataset is not None else (None, None)
    return _finish(
        name,
        x,
        y,
        xt,
        yt,
        seed=seed,
        val_fraction=val_fraction,
        synthetic=bool(getattr(dataset, "synthetic", False)),
        source=type(dataset).__name__,
        scale=None,
    )


def load_dataset(spec: str, seed: int = 0) -> ZooData:
    """Resolve a ``--dataset`` value (see module docstring)."""
    if spec == "digits":
        return load_digits(seed)
    if spec == "simeo":
        return load_simeo(seed=seed)
    return load_mnist_folder(spec, seed)
