"""Zoos of registered backbones: ``eoreps zoo build --backbone cnn-small`` (or ``--arch backbone:cnn-small``).

A member is a backbone of :data:`eoreps.models.registry.BACKBONES` (``cnn-tiny``, ``cnn-small``,
``timm:resnet18``, a ViT, ...) with a linear head, trained on a zoo data set. Its generating factors
(:class:`BackboneGrid`) are seed, optimizer, learning rate, weight decay, augmentation, label fraction
(``train_fraction``) and initialisation (``random`` or the folder/file of a saved backbone, e.g. an SSL
pretraining's export). The store, index, manifest and resume rules are those of every zoo
(:mod:`eoreps.zoo.build`); the weight vector of a member is its whole ``state_dict`` in order, BatchNorm
running statistics included (``num_batches_tracked`` as a float, exact below 2**24).

Training (:func:`run_backbone_chunk`, the backbone counterpart of :func:`eoreps.zoo.chunks.run_chunk`):
parameters of a chunk live in one flat buffer (:class:`eoreps.zoo.optim.StackedParams`) with per-member
SGD/Adam (:class:`eoreps.zoo.optim.StackedOptimizer`), each member with its own data order
(:func:`eoreps.zoo.population.member_order`). Without BatchNorm the members of a chunk run as one
``torch.func.vmap`` of ``functional_call``; a BatchNorm model in train mode updates its running statistics
in place, which vmap cannot do simply, so such members train one at a time and
:func:`chunk_backbone_members` gives each its own chunk (one resumable unit, one Ray task).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eoreps.errors import ConfigError, DataError, unknown_name
from eoreps.progress import progress
from eoreps.zoo.chunks import Sink, member_rows
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.grid import MemberFactors, check_common_factors, plan_combos, read_grid_values
from eoreps.zoo.optim import StackedOptimizer, StackedParams
from eoreps.zoo.population import TrainOptions, chunk_members, member_order, train_subset

BACKBONE_PREFIX = "backbone:"
AUGMENTS = ("none", "flip")
BACKBONE_FACTORS = ("seed", "optimizer", "lr", "weight_decay", "augment", "train_fraction", "init")


def backbone_name_of(arch: str | None) -> str | None:
    """The backbone of a zoo ``arch`` value ``backbone:NAME`` (None for a layer-list zoo architecture)."""
    if arch and arch.startswith(BACKBONE_PREFIX):
        return arch[len(BACKBONE_PREFIX) :]
    return None


@dataclass(frozen=True)
class BackboneMember(MemberFactors):
    """One backbone zoo member's generating factors (``init``: ``random`` or a saved backbone's path)."""

    model_id: int
    seed: int
    optimizer: str
    lr: float
    weight_decay: float
    augment: str
    train_fraction: float
    init: str


@dataclass
class BackboneGrid:
    """Values per generating factor of a backbone zoo (the grid YAML's keys; see ``docs/zoo.md``)."""

    seed: list[int] = field(default_factory=lambda: [0, 1])
    optimizer: list[str] = field(default_factory=lambda: ["sgd", "adam"])
    lr: list[float] = field(default_factory=lambda: [1e-3])
    weight_decay: list[float] = field(default_factory=lambda: [0.0, 1e-4])
    augment: list[str] = field(default_factory=lambda: ["none", "flip"])
    train_fraction: list[float] = field(default_factory=lambda: [1.0])
    init: list[str] = field(default_factory=lambda: ["random"])
    sampling: str = "grid"
    n_models: int | None = None
    factors: ClassVar[tuple[str, ...]] = BACKBONE_FACTORS

    def validate(self, where: str = "grid") -> BackboneGrid:
        """Check names, ranges and init paths; raises a one-line :class:`ConfigError` / :class:`DataError`."""
        for a in self.augment:
            if a not in AUGMENTS:
                raise ConfigError(f"{where}: {unknown_name('augment', a, list(AUGMENTS)).args[0]}")
        for v in self.weight_decay:
            if v < 0:
                raise ConfigError(f"{where}: weight_decay {v} must be >= 0")
        for i in self.init:
            if i != "random" and not Path(i).exists():
                raise DataError(
                    f"{i}: init backbone not found; give 'random' or a saved backbone "
                    f"(a folder holding backbone.safetensors)"
                )
        check_common_factors(self, BACKBONE_FACTORS, where)
        return self

    @property
    def size(self) -> int:
        """Number of points in the full product."""
        return int(np.prod([len(getattr(self, f)) for f in BACKBONE_FACTORS]))


def load_backbone_grid(source: str | Path | dict[str, Any] | None) -> BackboneGrid:
    """A :class:`BackboneGrid` from a YAML file or dict (``init`` paths resolved to absolute ones)."""
    data, where = read_grid_values(source, BackboneGrid, BACKBONE_FACTORS)
    try:
        g = BackboneGrid(**data)
        g.seed = [int(s) for s in g.seed]
        g.lr, g.weight_decay = [float(v) for v in g.lr], [float(v) for v in g.weight_decay]
        g.train_fraction = [float(v) for v in g.train_fraction]
        g.optimizer, g.augment = [str(v) for v in g.optimizer], [str(v) for v in g.augment]
        g.init = [i if i == "random" else str(Path(i).resolve()) for i in map(str, g.init)]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: bad grid value ({e}); see docs/zoo.md for the backbone grid") from None
    return g.validate(where)


def plan_backbone_members(grid: BackboneGrid, seed: int = 0) -> list[BackboneMember]:
    """The deterministic member list of ``grid`` (as :func:`eoreps.zoo.grid.plan_members`)."""
    return [BackboneMember(i, *c) for i, c in enumerate(plan_combos(grid, BACKBONE_FACTORS, seed))]


class BackboneClassifier(nn.Module):
    """A backbone and a linear head: ``(B, C, H, W)`` -> logits ``(B, K)``."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.num_features), num_classes)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``."""
        return self.head(self.backbone(x))


def default_backbone_kwargs(name: str, in_shape: tuple[int, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the defaults pretraining uses (ViTs: ``img_size`` = the images', ``patch_size=4``)."""
    from eoreps.ssl.pretrain import DEFAULT_BACKBONE_KWARGS

    for prefix, defaults in DEFAULT_BACKBONE_KWARGS.items():
        if name.startswith(prefix):
            return {**defaults, "img_size": int(in_shape[-1]), **kwargs}
    return dict(kwargs)


@dataclass(frozen=True)
class _Trainable:
    """The trainable parameters' shapes, the layout :class:`StackedParams` stacks."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]

    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return list(self.shapes)


class BackboneArch:
    """A backbone zoo's architecture: backbone ``name`` (+ ``kwargs``) for ``in_shape``, a linear head to
    ``num_classes`` (``head=False``: the backbone alone). Duck-types :class:`eoreps.zoo.architectures.Arch`
    where the zoo needs it (``name``, ``in_shape``, ``num_classes``, ``num_params``, ``param_shapes``)."""

    def __init__(
        self,
        backbone: str,
        in_shape: tuple[int, int, int],
        num_classes: int,
        kwargs: dict[str, Any] | None = None,
        head: bool = True,
    ) -> None:
        from eoreps.models.registry import canonical_backbone_name

        if not backbone.startswith("timm:"):
            backbone = canonical_backbone_name(backbone)  # an unknown name: one line with the choices
        self.backbone, self.head = backbone, head
        self.in_shape = tuple(int(v) for v in in_shape)
        self.num_classes = int(num_classes)
        self.kwargs = default_backbone_kwargs(backbone, self.in_shape, dict(kwargs or {}))
        net = self.build()
        self._state = tuple((k, tuple(v.shape)) for k, v in net.state_dict().items())
        self._dtypes = {k: v.dtype for k, v in net.state_dict().items()}
        self.trainable = _Trainable(tuple((k, tuple(p.shape)) for k, p in net.named_parameters()))
        self.has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())

    @property
    def name(self) -> str:
        """``backbone:NAME``, the zoo's ``arch`` value."""
        return BACKBONE_PREFIX + self.backbone

    def spec(self) -> dict[str, Any]:
        """What the manifest records to rebuild the members (``backbone``, ``kwargs``, ``head``)."""
        return {"name": self.backbone, "kwargs": self.kwargs, "head": self.head}

    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """``[(state_dict key, shape), ...]``: the layout of a weight vector (buffers included)."""
        return list(self._state)

    @property
    def num_params(self) -> int:
        """D, the length of a weight vector."""
        return sum(math.prod(s) for _, s in self._state)

    def build(self, seed: int | None = None) -> nn.Module:
        """A fresh member (initialised from ``seed`` when given, without touching the global RNG)."""
        from eoreps.models.registry import create_backbone

        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(int(seed))
            bb = create_backbone(self.backbone, in_chans=self.in_shape[0], **self.kwargs)
            return BackboneClassifier(bb, self.num_classes) if self.head else bb

    def initial_state(self, member: BackboneMember) -> dict[str, torch.Tensor]:
        """The state_dict a member starts from: random from its seed, the backbone part from ``init``."""
        net = self.build(member.seed)
        if member.init != "random":
            from eoreps.models.io import load_backbone

            src = load_backbone(member.init).state_dict()
            target = net.backbone if self.head else net  # type: ignore[union-attr]
            mine = target.state_dict()
            if {k: tuple(v.shape) for k, v in src.items()} != {k: tuple(v.shape) for k, v in mine.items()}:
                raise ConfigError(
                    f"{member.init}: init backbone differs from the zoo's {self.backbone} "
                    f"({self.in_shape[0]} channels); give a backbone of the same architecture"
                )
            target.load_state_dict(src)
        return net.state_dict()

    def load(self, weights: torch.Tensor) -> nn.Module:
        """A member rebuilt from its (D,) weight vector, in eval mode."""
        net = self.build()
        net.load_state_dict(unflatten_state(weights, self._state, self._dtypes))
        return net.eval()


def unflatten_state(w: torch.Tensor, shapes: Any, dtypes: dict[str, torch.dtype]) -> dict[str, torch.Tensor]:
    """A (D,) weight vector as a state_dict (``shapes``: ``[(key, shape), ...]``; integer buffers cast)."""
    out, o = {}, 0
    for k, s in shapes:
        n = math.prod(s)
        out[k] = w[o : o + n].reshape(s).to(dtypes.get(k, torch.float32))
        o += n
    return out


def backbone_arch_from_manifest(manifest: dict[str, Any]) -> BackboneArch:
    """The :class:`BackboneArch` a backbone zoo's manifest describes."""
    spec = manifest.get("backbone") or {}
    return BackboneArch(
        spec.get("name", backbone_name_of(manifest["architecture"]) or ""),
        tuple(manifest["in_shape"]),
        int(manifest.get("num_classes") or 1),
        spec.get("kwargs", {}),
        bool(spec.get("head", True)),
    )


def chunk_backbone_members(
    members: list[BackboneMember], arch: BackboneArch, chunk_size: int
) -> list[list[BackboneMember]]:
    """Chunks of a backbone zoo: one member each with BatchNorm (trained one at a time), else up to
    ``chunk_size`` members of one training fraction (one vmap)."""
    return chunk_members(members, 1 if arch.has_batchnorm else chunk_size)  # type: ignore[arg-type]


class BackbonePopulation:
    """P backbone members trained in lock-step (see the module docstring)."""

    def __init__(
        self, arch: BackboneArch, members: list[BackboneMember], data: ZooData, options: TrainOptions
    ) -> None:
        keys = {m.group_key for m in members}
        if len(keys) != 1:
            raise ValueError(f"a chunk needs one train_fraction; got {sorted(keys)}")
        self.arch, self.members, self.data, self.opt = arch, members, data, options
        self.P = len(members)
        self.model = arch.build()
        states = [arch.initial_state(m) for m in members]
        pkeys = [k for k, _ in arch.trainable.param_shapes()]
        init = torch.stack([torch.cat([s[k].reshape(-1).float() for k in pkeys]) for s in states])
        self.stack = StackedParams(arch.trainable, init)  # type: ignore[arg-type]
        self.buffers = {
            k: torch.stack([s[k] for s in states]) for k, _ in arch.param_shapes() if k not in pkeys
        }
        self.optim = StackedOptimizer(
            self.stack,
            [m.optimizer for m in members],
            torch.tensor([m.lr for m in members]),
            torch.tensor([m.weight_decay for m in members]),
        )
        self.subset = train_subset(len(data.y_train), members[0].train_fraction)
        self.epoch = 0

    # ------------------------------------------------------------------ forward
    def _member(self, p: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return {k: v[p] for k, v in self.stack.params.items()}, {k: v[p] for k, v in self.buffers.items()}

    def _logits(self, p: int, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        params, buffers = self._member(p)
        return functional_call(self.model, (params, buffers), (x,))

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Backpropagate every member's mean cross-entropy on its own batch ``x[p]`` (P, b, C, H, W)."""
        from torch.func import functional_call, vmap

        if self.arch.has_batchnorm:  # running statistics are updated in place: one member at a time
            for p in range(self.P):
                F.cross_entropy(self._logits(p, x[p]), y[p]).backward()
            return

        def one(params: dict, buffers: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_call(self.model, (params, buffers), (xb,)), yb)

        vmap(one, randomness="different")(dict(self.stack.params), self.buffers, x, y).sum().backward()

    def _augment(self, x: torch.Tensor, epoch: int, start: int) -> torch.Tensor:
        """Random horizontal/vertical flips for members with ``augment: flip`` (masks seeded by the member's
        seed, the epoch and the position in the epoch: a resumed run draws the same)."""
        flips = [p for p, m in enumerate(self.members) if m.augment == "flip"]
        if not flips:
            return x
        b = x.shape[1]
        masks = torch.zeros(self.P, b, 2, dtype=torch.bool)
        for p in flips:
            rng = np.random.default_rng([self.members[p].seed, epoch, start, 5])
            masks[p] = torch.from_numpy(rng.random((b, 2)) < 0.5)
        x = torch.where(masks[:, :, 0, None, None, None], x.flip(-1), x)
        return torch.where(masks[:, :, 1, None, None, None], x.flip(-2), x)

    def train_epoch(self) -> None:
        """One more epoch for every member (``self.epoch`` += 1)."""
        epoch = self.epoch + 1
        orders = torch.from_numpy(np.stack([member_order(m.seed, epoch, self.subset) for m in self.members]))
        self.model.train()
        for s in range(0, len(self.subset), self.opt.batch_size):
            idx = orders[:, s : s + self.opt.batch_size]
            if self.arch.has_batchnorm and idx.shape[1] < 2:
                break  # BatchNorm cannot train on one sample: a trailing batch of one is skipped
            x = self._augment(self.data.x_train[idx], epoch, s)
            self.stack.zero_grad()
            self._loss(x, self.data.y_train[idx])
            self.optim.step()
        self.epoch = epoch

    # --------------------------------------------------------------- evaluation
    @torch.no_grad()
    def _metrics(self, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss and accuracy of every member on ``(x, y)`` (eval mode)."""
        self.model.eval()
        loss, acc = np.zeros(self.P), np.zeros(self.P)
        for p in range(self.P):
            logits = torch.cat(
                [
                    self._logits(p, x[i : i + self.opt.eval_batch])
                    for i in range(0, len(x), self.opt.eval_batch)
                ]
            )
            loss[p] = float(F.cross_entropy(logits, y))
            acc[p] = float((logits.argmax(1) == y).float().mean())
        return loss, acc

    def evaluate(self) -> dict[str, np.ndarray]:
        """Train (the members' subset, at most ``train_eval_max`` images), validation and test metrics."""
        tr = self.subset[: self.opt.train_eval_max] if self.opt.train_eval_max else self.subset
        out: dict[str, np.ndarray] = {}
        for split, (x, y) in {
            "train": (self.data.x_train[tr], self.data.y_train[tr]),
            "val": (self.data.x_val, self.data.y_val),
            "test": (self.data.x_test, self.data.y_test),
        }.items():
            out[f"{split}_loss"], out[f"{split}_acc"] = self._metrics(x, y)
        out["ggap"] = out["train_acc"] - out["test_acc"]
        return out

    # -------------------------------------------------------------- checkpoints
    def member_weights(self) -> torch.Tensor:
        """(P, D) float32: every member's state_dict in :meth:`BackboneArch.param_shapes` order."""
        src = {**self.stack.params, **self.buffers}
        return torch.cat(
            [src[k].detach().reshape(self.P, -1).float() for k, _ in self.arch.param_shapes()], 1
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Weights, epoch and optimizer state (enough to resume bit for bit)."""
        return {
            "weights": self.member_weights(),
            "epoch": torch.tensor(self.epoch),
            **{f"optim.{k}": v for k, v in self.optim.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict`."""
        with torch.no_grad():
            o = 0
            for k, s in self.arch.param_shapes():
                n = math.prod(s)
                block = state["weights"][:, o : o + n].reshape(self.P, *s)
                o += n
                dst = self.stack.params.get(k)
                (dst if dst is not None else self.buffers[k]).copy_(block)
        self.epoch = int(state["epoch"])
        self.optim.load_state_dict(
            {k[len("optim.") :]: v for k, v in state.items() if k.startswith("optim.")}
        )


def run_backbone_chunk(
    arch: BackboneArch,
    members: list[BackboneMember],
    data: ZooData,
    options: TrainOptions,
    epochs: int,
    chunk_seed: int,
    sink: Sink,
    extra: dict[str, Any],
    state: dict[str, torch.Tensor] | None = None,
    desc: str = "chunk",
) -> int:
    """Train one backbone chunk to ``epochs`` (the signature of :func:`eoreps.zoo.chunks.run_chunk`, so the
    local and Ray backends run either); ``chunk_seed`` is unused (every random draw is per member)."""
    pop = BackbonePopulation(arch, members, data, options)

    def checkpoint() -> None:
        sink(
            pop.epoch,
            pop.member_weights(),
            member_rows(members, pop.epoch, pop.evaluate(), extra),  # type: ignore[arg-type]
            pop.state_dict(),
        )

    if state is not None:
        pop.load_state_dict(state)
    else:
        checkpoint()
    start = pop.epoch
    for _ in progress(range(pop.epoch, epochs), desc=desc, unit="epoch"):
        pop.train_epoch()
        checkpoint()
    return pop.P * (pop.epoch - start) * len(pop.subset)
