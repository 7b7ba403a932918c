"""Train a population (chunk) of zoo members at once, vectorized across members.

A chunk holds members with one training fraction (:attr:`eoreps.zoo.grid.Member.group_key`: the same
number of steps per epoch); activation, optimizer rule, seed, initialisation, learning rate, weight
decay and dropout vary freely inside it (members are sorted by activation so each activation is one
slice, see :mod:`eoreps.zoo.population_ops`).

What each member sees (``data_order='per_model'``, the default) is exactly what it would see trained
alone with :func:`train_alone`: its own initialisation (:func:`eoreps.zoo.architectures.build_model`),
its own data order (:func:`member_order`), batches of ``batch_size``, and its own optimizer state.
``data_order='shared'`` feeds one order (seeded by the chunk seed) to every member: faster, since the
first convolution becomes one ungrouped convolution. Dropout masks come from one generator per chunk
and epoch (statistically, not bitwise, what a lone run would draw).

Engines (``TrainOptions.engine``): ``'native'`` runs whole epochs of a SIMD lane group of members (16, 8 or
4) in a kernel compiled for the architecture (:mod:`eoreps.zoo.native`, float32 or bf16 products, ~35x a
one-at-a-time loop on 2 cores); ``'torch'`` folds the members into grouped convolutions and batched matmuls
(:mod:`eoreps.zoo.population_ops`, float32 or bf16 autocast); ``'auto'`` (default) takes the native
engine when a C++ compiler is available and the architecture is supported, else torch. Both engines
train each member as it would be trained alone (``tests/zoo/test_population.py``).

Precision: ``'fp32'``, ``'bf16'`` (torch engine: autocast of convolutions and matmuls to bfloat16;
native engine, on CPUs with AVX512-BF16: the conv+pool products as bf16 pairs; master weights, loss and
optimizer stay float32) or ``'auto'`` (native: bf16 only where the bf16 kernel measures faster than fp32,
:mod:`eoreps.zoo.native_precision`; torch: bf16). Evaluation is always float32, so a rebuilt member
reproduces its recorded metrics.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError
from eoreps.zoo import native, native_precision
from eoreps.zoo.architectures import Arch, build_model, flatten_state
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.grid import Member
from eoreps.zoo.memory import retain_freed_memory
from eoreps.zoo.optim import StackedOptimizer, StackedParams
from eoreps.zoo.population_ops import gather_images, gather_vectors, population_forward

EVAL_BUDGET = 64_000_000  # activation values per evaluation batch (float32: 256 MB)
SPLIT_SEED = 7  # seeds the nested training subsets (train_fraction); fixed so subsets are comparable


def train_subset(n: int, fraction: float) -> np.ndarray:
    """Indices of the training subset for ``fraction`` (nested: a smaller fraction is a prefix)."""
    perm = np.random.default_rng([SPLIT_SEED, n]).permutation(n)
    return np.sort(perm[: max(1, int(round(fraction * n)))])


def member_order(seed: int, epoch: int, subset: np.ndarray) -> np.ndarray:
    """The order in which a member with ``seed`` visits ``subset`` in ``epoch`` (1-based)."""
    return subset[np.random.default_rng([int(seed), int(epoch), 3]).permutation(len(subset))]


@dataclass
class TrainOptions:
    """How a chunk is trained."""

    batch_size: int = 10
    precision: str = "auto"  # fp32 | bf16 | auto (native: measured, see native_precision; torch: bf16)
    data_order: str = "per_model"
    eval_batch: int = 1000
    train_eval_max: int | None = None  # cap on training images evaluated per epoch (None = all)
    engine: str = "auto"  # native | torch | auto (native when it can run here)

    def check_engine(self) -> None:
        """One-line :class:`ConfigError` for an unknown engine or precision name."""
        if self.engine not in ENGINES:
            raise ConfigError(f"engine='{self.engine}' must be one of {', '.join(ENGINES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision='{self.precision}' must be one of {', '.join(PRECISIONS)}")


ENGINES = ("auto", "native", "torch")
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_options(options: TrainOptions, arch: Arch) -> TrainOptions:
    """``options`` with a concrete engine and precision (what a zoo records in its manifest).

    ``engine='auto'`` picks native where its kernel for the precision can run here (bf16: a CPU with
    AVX512-BF16), else torch; ``engine='native'`` where it cannot run is a :class:`ConfigError` with the
    reason. ``precision='auto'``: on native the measured choice of :func:`native_precision.choose` (bf16 only
    where the bf16 kernel is faster), on torch bf16.
    """
    options.check_engine()
    engine, kernel = options.engine, "bf16" if options.precision == "bf16" else "fp32"
    if engine == "auto":
        engine = "native"
        try:
            native.load(arch, kernel)
        except native.AbiMismatch as e:  # a bug, not a missing compiler: fall back, but say why
            warnings.warn(f"{e}; using the torch engine", RuntimeWarning, stacklevel=2)
            engine = "torch"
        except native.NativeUnavailable:
            engine = "torch"
    elif engine == "native":
        try:
            native.load(arch, kernel)
        except native.NativeUnavailable as e:
            raise ConfigError(f"engine=native cannot run here: {e}; use engine=torch") from None
    precision = options.precision
    if precision == "auto":
        precision = native_precision.choose(arch, torch.get_num_threads()).precision \
            if engine == "native" else "bf16"
    return dataclasses.replace(options, engine=engine, precision=precision)


class PopulationTrainer:
    """P members of one group trained in lock-step.

    ``members``: the chunk's members (same ``group_key``); ``chunk_seed`` seeds dropout masks and the
    shared data order.
    """

    def __init__(self, arch: Arch, members: list[Member], data: ZooData, options: TrainOptions | None = None,
                 chunk_seed: int = 0) -> None:
        self.arch, self.members, self.data = arch, members, data
        retain_freed_memory()  # large activations are reused, not page-faulted in again each step
        self.opt = resolve_options(options or TrainOptions(), arch)
        if self.opt.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.opt.batch_size}")
        if self.opt.data_order not in ("per_model", "shared"):
            raise ValueError(f"data_order must be 'per_model' or 'shared', got {self.opt.data_order!r}")
        keys = {m.group_key for m in members}
        if len(keys) != 1:
            raise ValueError(f"a chunk needs one train_fraction; got {sorted(keys)}")
        self.fraction = next(iter(keys))
        acts = [m.activation for m in members]
        self.activation: str | list[str] = acts[0] if len(set(acts)) == 1 else acts
        kinds = [m.optimizer for m in members]
        self.optimizer_kind: str | list[str] = kinds[0] if len(set(kinds)) == 1 else kinds
        self.P = len(members)
        self.chunk_seed = int(chunk_seed)
        init = torch.stack([flatten_state(build_model(arch, m.activation, m.init, m.seed)) for m in members])
        self.stack = StackedParams(arch, init)
        lr, wd = torch.tensor([m.lr for m in members]), torch.tensor([m.weight_decay for m in members])
        self.optim = StackedOptimizer(self.stack, self.optimizer_kind, lr, wd)
        self.dropout = torch.tensor([m.dropout for m in members], dtype=torch.float32)
        self.subset = train_subset(len(data.y_train), self.fraction)
        self.epoch = 0
        if self.opt.engine == "native":
            self._native = native.NativeGroups(
                native.load(arch, self.opt.precision), self.P, arch.num_params, lr, wd,
                torch.tensor([m.optimizer == "adam" for m in members], dtype=torch.int32),
                torch.tensor([native.ACT_CODES[m.activation] for m in members], dtype=torch.int32),
                self.dropout, torch.get_num_threads(), arch.num_classes)
            self._x_native = data.x_train.reshape(len(data.x_train), -1).float().contiguous()
            self._y_native = data.y_train.to(torch.int32).contiguous()
            return
        # training images in the gather-friendly layout, in the dtype the first layer consumes
        dt = torch.bfloat16 if self.opt.precision == "bf16" else torch.float32
        if arch.conv_first:
            self._x_nhwc = data.x_train.permute(0, 2, 3, 1).contiguous().to(dt)
            self._x_cl = data.x_train.to(dt).contiguous(memory_format=torch.channels_last)
        else:
            self._x_flat = data.x_train.reshape(len(data.x_train), -1).to(dt)

    # ------------------------------------------------------------------ training
    def _batch(self, idx: torch.Tensor, shared: bool) -> torch.Tensor:
        if shared:
            return self._x_cl[idx] if self.arch.conv_first else self._x_flat[idx]
        return gather_images(self._x_nhwc, idx) if self.arch.conv_first else gather_vectors(self._x_flat, idx)

    def train_epoch(self) -> None:
        """Train every member for one more epoch (``self.epoch`` += 1)."""
        if self.opt.engine == "native":
            self._train_epoch_native()
            return
        epoch = self.epoch + 1
        shared = self.opt.data_order == "shared"
        if shared:
            orders = torch.from_numpy(member_order(self.chunk_seed, epoch, self.subset))
        else:
            orders = torch.from_numpy(
                np.stack([member_order(m.seed, epoch, self.subset) for m in self.members])
            )
        gen = torch.Generator().manual_seed(self.chunk_seed * 100_003 + epoch)
        drop = self.dropout if bool((self.dropout > 0).any()) else None
        n, bs = len(self.subset), self.opt.batch_size
        y_all = self.data.y_train
        bf16 = self.opt.precision == "bf16"
        for s in range(0, n, bs):
            if shared:
                idx = orders[s:s + bs]
                x = self._batch(idx, True)
                y = y_all[idx].expand(self.P, -1)
            else:
                idx = orders[:, s:s + bs]
                x = self._batch(idx, False)
                y = y_all[idx]
            b = idx.shape[-1]
            self.stack.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = population_forward(self.arch, self.stack.params, x, self.activation, shared=shared,
                                            dropout=drop, generator=gen)
            loss = (
                F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
                / b
            )
            loss.backward()
            self.optim.step()
        self.epoch = epoch

    def _train_epoch_native(self) -> None:
        epoch = self.epoch + 1
        if self.opt.data_order == "shared":
            orders = np.broadcast_to(
                member_order(self.chunk_seed, epoch, self.subset), (self.P, len(self.subset))
            )
        else:
            orders = np.stack([member_order(m.seed, epoch, self.subset) for m in self.members])
        # one dropout stream per member and epoch
        seeds = np.array([np.random.default_rng([self.chunk_seed, epoch, m.model_id, 5]).integers(0, 2 ** 32)
                          for m in self.members], dtype=np.uint32)
        ng, stack, opt = self._native, self.stack, self.optim
        w = ng.to_lanes(stack.members())
        moments = opt.kind != "sgd"
        m = ng.to_lanes(stack.rows(opt.exp_avg)) if moments else None
        v = ng.to_lanes(stack.rows(opt.exp_avg_sq)) if moments else None
        ng.train_epoch(
            self._x_native, self._y_native, orders, self.opt.batch_size, w, m, v, opt.step_count, seeds
        )
        stack.set_members(ng.from_lanes(w))
        if moments:
            stack.set_rows(opt.exp_avg, ng.from_lanes(m))  # type: ignore[arg-type]
            stack.set_rows(opt.exp_avg_sq, ng.from_lanes(v))  # type: ignore[arg-type]
        opt.step_count += -(-len(self.subset) // self.opt.batch_size)
        self.epoch = epoch

    # ---------------------------------------------------------------- evaluation
    def _eval_split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        params = {k: v.detach() for k, v in self.stack.params.items()}
        return eval_population(
            self.arch, params, self.activation, x, y, self.opt.eval_batch, engine=self.opt.engine
        )

    def evaluate(self) -> dict[str, np.ndarray]:
        """Per-member metrics (P,) on train (the member's subset), validation and test, float32 forward."""
        sub = self.subset if self.opt.train_eval_max is None else self.subset[: self.opt.train_eval_max]
        sub_t = torch.from_numpy(sub)
        out: dict[str, np.ndarray] = {}
        for split, (x, y) in {"train": (self.data.x_train[sub_t], self.data.y_train[sub_t]),
                              "val": (self.data.x_val, self.data.y_val),
                              "test": (self.data.x_test, self.data.y_test)}.items():
            out[f"{split}_loss"], out[f"{split}_acc"] = self._eval_split(x, y)
        out["ggap"] = out["train_acc"] - out["test_acc"]
        return out

    # -------------------------------------------------------------- state / io
    def member_weights(self) -> torch.Tensor:
        """(P, D) float32 weights of every member in state_dict order."""
        return self.stack.members()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything needed to resume this chunk exactly after ``self.epoch``."""
        return {"weights": self.member_weights(), "epoch": torch.tensor(self.epoch),
                **{f"optim.{k}": v for k, v in self.optim.state_dict().items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict`."""
        self.stack.set_members(state["weights"])
        self.epoch = int(state["epoch"])
        self.optim.load_state_dict({k[len("optim."):]: v for k, v in state.items() if k.startswith("optim.")})


@torch.no_grad()
def eval_population(
    arch: Arch,
    params: dict[str, torch.Tensor],
    activation: str | list[str],
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int = 1000,
    engine: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cross-entropy and accuracy (P,) of stacked members on images ``x`` (N, C, H, W), labels ``y``
    (N,); float32, eval mode (no dropout).

    ``engine``: ``'native'`` (the compiled kernel, ~5x faster), ``'torch'``, or ``'auto'`` (native where it
    can run). ``batch`` bounds the torch engine's activation memory; the native kernel needs none.
    """
    P = next(iter(params.values())).shape[0]
    on_cpu = x.device.type == "cpu" and all(v.device.type == "cpu" for v in params.values())
    if engine == "native" or (engine == "auto" and on_cpu and native.available(arch)):
        weights = torch.cat(
            [params[k].detach().reshape(P, -1).float() for k, _ in arch.param_shapes()], dim=1
        )
        acts = [activation] * P if isinstance(activation, str) else list(activation)
        ng = native.NativeGroups.for_eval(
            native.load(arch),
            P,
            arch.num_params,
            torch.tensor([native.ACT_CODES[a] for a in acts]),
            torch.get_num_threads(),
            arch.num_classes,
        )
        return ng.evaluate(x.reshape(len(x), -1).float().contiguous(), y.to(torch.int32).contiguous(),
                           ng.to_lanes(weights))
    retain_freed_memory()
    # cap the widest activation (P * batch * max_activation values) at ~64 M floats (256 MB)
    batch = max(1, min(batch, EVAL_BUDGET // max(1, P * arch.max_activation())))
    loss = torch.zeros(P, dtype=torch.float64)
    correct = torch.zeros(P, dtype=torch.int64)
    for s in range(0, len(y), batch):
        xb = x[s:s + batch]
        xb = xb.contiguous(memory_format=torch.channels_last) if arch.conv_first else xb.reshape(len(xb), -1)
        yb = y[s:s + batch]
        logits = population_forward(arch, params, xb, activation, shared=True)  # (P, b, K)
        lp = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(P), reduction="none")
        loss += lp.view(P, -1).sum(1).double()
        correct += (logits.argmax(-1) == yb).sum(1)
    n = max(1, len(y))
    return (loss / n).numpy(), (correct.double() / n).numpy()


def stack_params(arch: Arch, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """(P, D) weight rows (state_dict order) -> {key: (P, *shape)} views."""
    out, o = {}, 0
    for key, shape in arch.param_shapes():
        n = math.prod(shape)
        out[key] = weights[:, o:o + n].reshape(weights.shape[0], *shape)
        o += n
    return out


def train_alone(
    arch: Arch, member: Member, data: ZooData, epochs: int, batch_size: int = 10
) -> torch.nn.Module:
    """Reference: one member trained by itself with ``nn.Module`` + ``torch.optim`` (float32).

    Same initialisation and data order as the member gets in a vectorized chunk; used by the
    equivalence test and the throughput benchmark's baseline. Dropout masks come from the global RNG.
    """
    model = build_model(arch, member.activation, member.init, member.seed, member.dropout)
    cls = torch.optim.Adam if member.optimizer == "adam" else torch.optim.SGD
    opt = cls(model.parameters(), lr=member.lr, weight_decay=member.weight_decay)
    subset = train_subset(len(data.y_train), member.train_fraction)
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.from_numpy(member_order(member.seed, epoch, subset))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
    return model.eval()


def chunk_members(members: list[Member], max_size: int) -> list[list[Member]]:
    """Group members by ``group_key`` and cut each group into chunks of at most ``max_size``
    (balanced sizes); deterministic order (by group key, then activation, optimizer and model_id, so
    that each activation is one contiguous slice of a chunk)."""
    groups: dict[float, list[Member]] = {}
    for m in sorted(members, key=lambda m: (getattr(m, "activation", ""), m.optimizer, m.model_id)):
        groups.setdefault(m.group_key, []).append(m)
    chunks: list[list[Member]] = []
    for key in sorted(groups):
        g = groups[key]
        k = math.ceil(len(g) / max_size)
        size = math.ceil(len(g) / k)
        chunks += [g[i:i + size] for i in range(0, len(g), size)]
    return chunks
