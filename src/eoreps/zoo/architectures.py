"""Architectures of model-zoo members, described once as a layer list.

Every architecture is a flat sequence of ops (:class:`Op`). The same description drives both

* :class:`ZooNet`, the ordinary ``nn.Module`` a zoo member is rebuilt as, and
* :mod:`eoreps.zoo.population_ops`, the vectorized forward that trains hundreds of members at once.

Parameter order (the order of a model's flat weight vector everywhere in eoreps, equal to the
``state_dict`` key order of :class:`ZooNet`) is layer order, weight before bias, e.g. for ``cnn_s``::

    conv1.weight (8,1,5,5), conv1.bias (8,), conv2.weight (6,8,5,5), conv2.bias (6,),
    conv3.weight (4,6,2,2), conv3.bias (4,), fc1.weight (20,36), fc1.bias (20,),
    fc2.weight (10,20), fc2.bias (10,)

Registered architectures (``in_shape`` is the default input; any shape the layers fit is accepted):

==============  ===========  ==============================================================  ========
name            in_shape     layers                                                          params
==============  ===========  ==============================================================  ========
``cnn_s``       1 x 28 x 28  Conv 1->8 k5, pool 2, act, Conv 8->6 k5, pool 2, act,           2,464
                             Conv 6->4 k2, act, Linear 36->20, act, Linear 20->10
``cnn_s_rgb``   3 x 32 x 32  the same layers on 3 channels (Linear 64->20)                   3,424
``cnn_digits``  1 x 8 x 8    Conv 1->6 k3, pool 2, act, Conv 6->8 k2, act, Linear 32->16,    958
                             act, Linear 16->10
``mlp``         1 x 8 x 8    Linear D->32, act, Linear 32->K                                 2,410
``cnn_ms``      12 x 32 x 32 Conv 12->16 k3, pool 2, act, Conv 16->16 k3, pool 2, act,       11,280
                             Conv 16->8 k2, act, Linear 200->32, act, Linear 32->8
==============  ===========  ==============================================================  ========

Dropout (when a member's ``dropout`` > 0) follows every hidden activation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from eoreps.errors import ConfigError, unknown_name
from eoreps.models.arch_registry import ARCHITECTURES

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
}
INITS = ("uniform", "normal", "kaiming_uniform", "kaiming_normal")


@dataclass(frozen=True)
class Op:
    """One layer: ``kind`` is ``conv``, ``pool``, ``act``, ``flatten`` or ``linear``.

    ``conv``: ``name``, ``cin``, ``cout``, ``k`` (stride 1, no padding); ``pool``: max-pool ``k`` x ``k``
    with stride ``k``; ``linear``: ``name``, ``cin`` (in features), ``cout`` (out features).
    """

    kind: str
    name: str = ""
    cin: int = 0
    cout: int = 0
    k: int = 0


Shape = tuple[int, ...]


class ShapeError(ValueError):
    """An op does not fit the shape that reaches it (e.g. a conv's ``cin`` differs from the channels)."""


def _conv_shape(op: Op, s: Shape) -> Shape:
    if len(s) != 3 or s[0] != op.cin:
        raise ShapeError(f"conv {op.name} on shape {s}")
    return (op.cout, s[1] - op.k + 1, s[2] - op.k + 1)


def _pool_shape(op: Op, s: Shape) -> Shape:
    if len(s) != 3:
        raise ShapeError(f"pool on shape {s}")
    return (s[0], s[1] // op.k, s[2] // op.k)


def _linear_shape(op: Op, s: Shape) -> Shape:
    if math.prod(s) != op.cin:
        raise ShapeError(f"linear {op.name} on shape {s}")
    return (op.cout,)


# op kind -> output shape (one member, one image) from the input shape: the one shape rule of every op,
# used by the torch path and by the native generator (eoreps.zoo.native)
SHAPE_RULES: dict[str, Callable[[Op, Shape], Shape]] = {
    "conv": _conv_shape,  # valid convolution, stride 1
    "pool": _pool_shape,  # max-pool k x k, stride k, floor mode
    "act": lambda op, s: s,
    "flatten": lambda op, s: (math.prod(s),),  # C-major, as torch's flatten(1)
    "linear": _linear_shape,  # on the flattened input
}


@dataclass(frozen=True)
class Layer:
    """An op with the shapes it maps (one member, one image, no batch axis)."""

    op: Op
    in_shape: Shape
    out_shape: Shape


def layer_shapes(in_shape: Shape, ops: tuple[Op, ...] | list[Op]) -> list[Layer]:
    """The shape pass: every op of ``ops`` with its input and output shape, from input ``in_shape``.

    Raises :class:`ShapeError` when an op does not fit what reaches it or its kind is unknown. Empty
    feature maps (a dimension < 1) are not checked here (:func:`_cnn` names them)."""
    out: list[Layer] = []
    shape = tuple(int(v) for v in in_shape)
    for op in ops:
        rule = SHAPE_RULES.get(op.kind)
        if rule is None:
            raise ShapeError(f"unknown op kind {op.kind!r}")
        out.append(Layer(op, shape, rule(op, shape)))
        shape = out[-1].out_shape
    return out


@dataclass(frozen=True)
class Arch:
    """A concrete architecture: ops for one input shape and number of classes."""

    name: str
    in_shape: tuple[int, int, int]
    num_classes: int
    ops: tuple[Op, ...]

    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """``[(state_dict key, shape), ...]`` in the canonical (state_dict) order."""
        out: list[tuple[str, tuple[int, ...]]] = []
        for op in self.ops:
            if op.kind == "conv":
                out += [(f"{op.name}.weight", (op.cout, op.cin, op.k, op.k)), (f"{op.name}.bias", (op.cout,))]
            elif op.kind == "linear":
                out += [(f"{op.name}.weight", (op.cout, op.cin)), (f"{op.name}.bias", (op.cout,))]
        return out

    @property
    def num_params(self) -> int:
        """Total number of parameters of one member."""
        return sum(math.prod(s) for _, s in self.param_shapes())

    def layers(self) -> list[Layer]:
        """Every op with its input and output shape (:func:`layer_shapes`; raises :class:`ShapeError`)."""
        return layer_shapes(self.in_shape, self.ops)

    def max_activation(self) -> int:
        """Largest number of activation values of one member for one image (sizes evaluation batches)."""
        return max([math.prod(self.in_shape)] + [math.prod(layer.out_shape) for layer in self.layers()])

    @property
    def conv_first(self) -> bool:
        """True when the first op is a convolution (population input is image-shaped)."""
        return self.ops[0].kind == "conv"


def _cnn(name: str, in_shape: tuple[int, int, int], k_out: int, convs: list[tuple[int, int, bool]],
         hidden: int) -> Arch:
    """Conv stack ``[(cout, k, pool_after), ...]`` each followed by act, then Linear->hidden->classes."""
    c, shape = in_shape[0], tuple(in_shape)
    ops: list[Op] = []
    for i, (cout, k, pool) in enumerate(convs, 1):
        ops.append(Op("conv", f"conv{i}", c, cout, k))
        if pool:
            ops.append(Op("pool", k=2))
        ops.append(Op("act"))
        c, shape = cout, layer_shapes(in_shape, ops)[-1].out_shape
        if min(shape[1:]) < 1:
            raise ConfigError(f"architecture '{name}' does not fit input {in_shape}: feature map vanishes "
                              f"after conv{i}; use a larger input or another arch")
    flat = math.prod(shape)
    ops += [Op("flatten"), Op("linear", "fc1", flat, hidden), Op("act"), Op("linear", "fc2", hidden, k_out)]
    return Arch(name, in_shape, k_out, tuple(ops))


def _mlp(name: str, in_shape: tuple[int, int, int], k_out: int, hidden: int = 32) -> Arch:
    d = math.prod(in_shape)
    ops = (Op("flatten"), Op("linear", "fc1", d, hidden), Op("act"), Op("linear", "fc2", hidden, k_out))
    return Arch(name, in_shape, k_out, ops)


@dataclass(frozen=True)
class ArchEntry:
    """A registered zoo architecture: ``build(in_shape, num_classes) -> Arch``, its default input shape
    and the channel count it requires (``None``: any)."""

    name: str
    build: Callable[[tuple[int, int, int], int], Arch]
    in_shape: tuple[int, int, int]
    channels: int | None = None


ArchBuilder = Callable[[tuple[int, int, int], int], Arch]
# ARCHITECTURES (eoreps.models.arch_registry) lists the built-in names below so that the backbone registry
# knows them without importing this module


def register_arch(name: str, *, in_shape: tuple[int, int, int],
                  channels: int | None = None) -> Callable[[ArchBuilder], ArchBuilder]:
    """Decorator registering ``build(in_shape, num_classes) -> Arch`` as zoo architecture ``name``
    (``in_shape``: the default input; ``channels``: the channel count it requires, ``None`` for any)."""

    def deco(build: ArchBuilder) -> ArchBuilder:
        ARCHITECTURES.add(name, ArchEntry(name, build, tuple(in_shape), channels))  # type: ignore[arg-type]
        return build

    return deco


@register_arch("cnn_s", in_shape=(1, 28, 28))
def _cnn_s(shape: tuple[int, int, int], k: int) -> Arch:
    return _cnn("cnn_s", shape, k, [(8, 5, True), (6, 5, True), (4, 2, False)], 20)


@register_arch("cnn_s_rgb", in_shape=(3, 32, 32), channels=3)
def _cnn_s_rgb(shape: tuple[int, int, int], k: int) -> Arch:
    return _cnn("cnn_s_rgb", shape, k, [(8, 5, True), (6, 5, True), (4, 2, False)], 20)


@register_arch("cnn_digits", in_shape=(1, 8, 8))
def _cnn_digits(shape: tuple[int, int, int], k: int) -> Arch:
    return _cnn("cnn_digits", shape, k, [(6, 3, True), (8, 2, False)], 16)


@register_arch("mlp", in_shape=(1, 8, 8))
def _mlp_arch(shape: tuple[int, int, int], k: int) -> Arch:
    return _mlp("mlp", shape, k)


@register_arch("cnn_ms", in_shape=(12, 32, 32))
def _cnn_ms(shape: tuple[int, int, int], k: int) -> Arch:
    return _cnn("cnn_ms", shape, k, [(16, 3, True), (16, 3, True), (8, 2, False)], 32)


ARCH_NAMES = tuple(ARCHITECTURES.names())
"""The built-in architectures (:data:`ARCHITECTURES` also holds any registered later)."""


def canonical_arch_name(name: str) -> str:
    """The registered spelling of zoo architecture ``name`` (``-`` read as ``_``); an unknown name raises
    :class:`ConfigError`, pointing at the backbone registry when ``name`` is a backbone (``cnn-small`` is a
    fit/pretrain backbone, a different network from the zoo's ``cnn_s``)."""
    if name in ARCHITECTURES:
        return ARCHITECTURES.canonical(name)
    from eoreps.models.registry import is_backbone_name

    note = (
        f"'{name}' is a backbone for fit/pretrain/evaluate, not a model-zoo architecture; for a zoo of that "
        f"backbone give backbone={name} (arch=backbone:{name}; see docs/zoo.md)"
        if is_backbone_name(name)
        else ""
    )
    return ARCHITECTURES.canonical(name, note)  # raises the one-line unknown-name error


def make_arch(name: str, in_shape: tuple[int, int, int] | None = None, num_classes: int = 10) -> Arch:
    """The architecture ``name`` for inputs of ``in_shape`` (C, H, W) and ``num_classes`` outputs.

    ``-`` and ``_`` are interchangeable in ``name`` (``cnn-s`` is ``cnn_s``)."""
    name = canonical_arch_name(name)
    entry = ARCHITECTURES.get(name)
    shape = tuple(int(v) for v in (in_shape or entry.in_shape))
    if entry.channels is not None and shape[0] != entry.channels:
        raise ConfigError(
            f"architecture '{name}' needs {entry.channels}-channel input, the dataset has {shape[0]}; "
            f"choose another arch (e.g. arch=cnn_s)"
        )
    return entry.build(shape, int(num_classes))  # type: ignore[arg-type]


class ZooNet(nn.Module):
    """A zoo member as a plain ``nn.Module`` (input (B, C, H, W) float32 -> logits (B, K)).

    ``state_dict()`` keys follow :meth:`Arch.param_shapes` exactly.
    """

    def __init__(self, arch: Arch, activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise unknown_name("activation", activation, list(ACTIVATIONS))
        self.arch, self.activation, self.dropout = arch, activation, float(dropout)
        for op in arch.ops:
            if op.kind == "conv":
                self.add_module(op.name, nn.Conv2d(op.cin, op.cout, op.k))
            elif op.kind == "linear":
                self.add_module(op.name, nn.Linear(op.cin, op.cout))
        self._act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.arch.ops:
            if op.kind in ("conv", "linear"):
                x = getattr(self, op.name)(x)
            elif op.kind == "pool":
                x = F.max_pool2d(x, op.k)
            elif op.kind == "act":
                x = self._act(x)
                if self.dropout > 0:
                    x = F.dropout(x, self.dropout, self.training)
            elif op.kind == "flatten":
                x = x.flatten(1)
        return x


def init_weights(model: ZooNet, scheme: str, seed: int) -> ZooNet:
    """Initialise ``model`` in place with ``scheme`` from a private generator seeded by ``seed``.

    Schemes (biases are zero in all of them): ``uniform`` U(-0.1, 0.1); ``normal`` N(0, 0.05^2);
    ``kaiming_uniform`` / ``kaiming_normal`` He et al. with the gain of ReLU (fan-in mode).
    Weights are drawn layer by layer in state_dict order, so a member is fully determined by
    (architecture, scheme, seed).
    """
    if scheme not in INITS:
        raise unknown_name("initialization", scheme, list(INITS))
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for key, p in model.named_parameters():
            if key.endswith(".bias"):
                p.zero_()
            elif scheme == "uniform":
                nn.init.uniform_(p, -0.1, 0.1, generator=g)
            elif scheme == "normal":
                nn.init.normal_(p, 0.0, 0.05, generator=g)
            elif scheme == "kaiming_uniform":
                nn.init.kaiming_uniform_(p, nonlinearity="relu", generator=g)
            else:
                nn.init.kaiming_normal_(p, nonlinearity="relu", generator=g)
    return model


def build_model(arch: Arch, activation: str, init: str, seed: int, dropout: float = 0.0) -> ZooNet:
    """A freshly initialised member (the epoch-0 state of a zoo model)."""
    return init_weights(ZooNet(arch, activation, dropout), init, seed)


def flatten_state(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one (D,) float32 vector in state_dict order."""
    return torch.cat([p.detach().reshape(-1).float() for p in model.state_dict().values()])


def load_flat(model: ZooNet, flat: torch.Tensor) -> ZooNet:
    """Copy a (D,) vector (state_dict order) into ``model``; wrong length raises ``ValueError``."""
    shapes = model.arch.param_shapes()
    total = sum(math.prod(s) for _, s in shapes)
    if flat.numel() != total:
        raise ValueError(
            f"weight vector has {flat.numel()} values, architecture {model.arch.name} needs {total}"
        )
    sd, o = {}, 0
    for key, shape in shapes:
        n = math.prod(shape)
        sd[key] = flat[o:o + n].reshape(shape).clone()
        o += n
    model.load_state_dict(sd)
    return model
