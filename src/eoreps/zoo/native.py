"""Native engine: a whole training epoch of a lane group of zoo members per call, compiled per architecture.

Why hand-written (measured in ``docs/zoo.md``): the PyTorch population path folds members into the
channels of grouped convolutions; its activations stream through memory several times per step and
oneDNN's grouped kernel for the 1-input-channel first layer runs at ~32 GFLOP/s, which capped the
population at ~4.6x a one-at-a-time loop. Here one SIMD lane is one member (``kernels/popnet.hpp``):
a group of :data:`LANES` members (as many float32 as one SIMD register of this CPU holds: 16 with AVX-512,
8 with AVX2, else 4; :func:`native_lanes`) trains a whole epoch (gather, forward, backward, optimizer) inside
one C++ call, with weights, gradients and activations resident in the core's cache; groups run on a thread
pool. A member's arithmetic does not depend on the lane count, except where the compiler fuses multiply-adds
(differently per width: results differ by rounding; bit-identical with ``-ffp-contract=off``).

The C++ for an architecture is *generated* from its op list (:func:`generate_source`): every layer is
a template instantiated with the layer's constant shape (from the shared shape pass
:meth:`Arch.layers`; one :class:`OpEmitter` per op kind in :data:`EMITTERS`), so loops are fully known to the
compiler. Only that per-architecture part is generated; the entry points are fixed in
``kernels/popnet_abi.hpp``, whose self-reported signatures are checked against :data:`ENTRY_POINTS` at load
(:func:`check_abi`). It is compiled once per (source, headers, compiler, CPU) with the system C++ compiler
(``c++``/``g++``; override with ``CXX``) into ``$EOREPS_CACHE/kernels`` (default
``~/.cache/eoreps/kernels``; ~1 s) and loaded with ``ctypes``. When no compiler works, :func:`load` raises
:class:`NativeUnavailable` and ``TrainOptions(engine='auto')`` falls back to the PyTorch engine.

Numerics: the ``fp32`` kernel computes in float32 throughout, so a member matches its lone float32 run to
rounding. The ``bf16`` kernel (``load(arch, 'bf16')``, only on CPUs with AVX512-BF16) takes the products of
its conv+pool layers as bf16 pairs with float32 accumulation (``kernels/popnet_bf16.hpp``); weights,
gradients and the optimizer stay float32. :mod:`eoreps.zoo.native_precision` decides which one ``auto`` runs.
Dropout masks come from a counter-based hash stream per member and epoch (statistically, not bitwise,
what ``torch.nn.functional.dropout`` would draw).
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from eoreps import precision as _precision  # cpu_flags looked up per call (tests replace it)
from eoreps.digest import bytes_digest, cache_dir
from eoreps.zoo.architectures import ACTIVATIONS, Arch, Layer, Op, ShapeError

LANES_ENV = "EOREPS_ZOO_LANES"  # 4, 8 or 16: members per lane group, in place of the CPU's register width
_LANE_FLAGS = (("avx512f", 16), ("avx", 8))  # /proc/cpuinfo flag -> float32 lanes of one SIMD register


def native_lanes() -> int:
    """Members per lane group on this CPU: the float32 lanes of one SIMD register (16 with AVX-512F, 8 with
    AVX/AVX2, else 4: SSE, NEON), or ``$EOREPS_ZOO_LANES``.

    Why not always 16: a 16-float vector on an AVX2 CPU is two registers per value, which doubles the
    kernel's register pressure; measured on a 2-core AMD EPYC with AVX2 (``benchmarks/zoo_throughput.py``,
    P=256, one run with both widths), 16 lanes trained 15,025 img/s, 8 lanes 104,989 (docs/zoo.md)."""
    knob = os.environ.get(LANES_ENV, "").strip()
    if knob:
        if knob not in ("4", "8", "16"):
            from eoreps.errors import ConfigError

            raise ConfigError(f"{LANES_ENV}={knob}: give 4, 8 or 16 members per lane group, or unset it")
        return int(knob)
    return _cpu_lanes()


def _cpu_lanes() -> int:
    """The float32 lanes of one SIMD register of this CPU (:data:`_LANE_FLAGS`, else 4)."""
    flags = _precision.cpu_flags()
    return next((n for flag, n in _LANE_FLAGS if flag in flags), 4)


def _lanes_at_import() -> tuple[int, str | None]:
    """:func:`native_lanes` when this module is imported, and the error of a bad ``$EOREPS_ZOO_LANES`` (the
    width then falls back to the CPU's; :func:`load` refuses to build a kernel, so ``--engine native`` stops
    with that one line and ``auto`` takes the torch engine), rather than failing every import of the zoo."""
    from eoreps.errors import ConfigError

    try:
        return native_lanes(), None
    except ConfigError as e:
        return _cpu_lanes(), str(e)


# read when eoreps.zoo.native is imported (set EOREPS_ZOO_LANES before), then at call time everywhere below
# (tests and benchmarks/zoo_throughput.py --lanes set LANES to build other widths)
LANES, _LANES_ERROR = _lanes_at_import()
ACT_CODES = {name: i for i, name in enumerate(ACTIVATIONS)}  # order of popnet::Act
_KERNELS = Path(__file__).parent / "kernels"  # the fixed C++ (*.hpp), part of the cache key
_FLAGS = ["-O3", "-march=native", "-std=gnu++17", "-ffp-contract=fast", "-fno-math-errno", "-shared", "-fPIC"]
KERNEL_PRECISIONS = ("fp32", "bf16")
BF16_FLAG = "avx512_bf16"  # the /proc/cpuinfo flag of VDPBF16PS, which the bf16 kernel needs
BF16_FLAGS = ["-mavx512bf16"]  # added only for bf16 kernels, only where the CPU has BF16_FLAG


class Unsupported(ValueError):
    """The architecture has a layer sequence the native engine does not generate."""


class NativeUnavailable(RuntimeError):
    """The native engine cannot run here (reason in the message)."""


class AbiMismatch(NativeUnavailable):
    """A compiled kernel's entry points differ from the ctypes signatures of this module (a bug)."""


# The exported entry points (kernels/popnet_abi.hpp): name -> (return type, argument types), in the type codes
# of popnet_abi.hpp. ctypes argtypes are derived from this table, and load() compares it with the signature
# string the compiler builds from the real C++ function types (popnet_abi()) before any other call.
ABI_VERSION = 1
ENTRY_POINTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "popnet_params": ("i32", ()),
    "popnet_inputs": ("i32", ()),
    "popnet_eval": ("i32", ("f32*", "i32*", "i32", "f32*", "i32*", "f64*", "i64*")),
    "popnet_act": ("void", ("f32*", "f32*", "f32*", "i32", "i32*", "f32*", "u32*", "u32")),
    "popnet_train": ("i32", ("f32*", "i32*", "i32*", "i32", "i32", "f32*", "f32*", "f32*", "f32*", "f32*",
                             "i32*", "i32*", "f32*", "u32*", "i32", "i64")),
}
_CTYPES = {"void": None, "i32": ctypes.c_int32, "i64": ctypes.c_int64, "u32": ctypes.c_uint32}


def expected_abi() -> str:
    """The ``popnet_abi()`` string a kernel must report for the signatures in :data:`ENTRY_POINTS`."""
    sigs = [f"{name}: {ret}({','.join(args)})" for name, (ret, args) in ENTRY_POINTS.items()]
    return "; ".join([f"popnet-abi {ABI_VERSION}", f"lanes {LANES}", *sigs])


def _ctype(code: str) -> type | None:
    return ctypes.c_void_p if code.endswith("*") else _CTYPES[code]


def check_abi(lib: ctypes.CDLL, where: str) -> None:
    """Set the ctypes signatures of ``lib`` from :data:`ENTRY_POINTS` after checking them against the
    kernel's own description; raises :class:`AbiMismatch` (one line, first difference) when they differ."""
    try:
        describe = lib.popnet_abi
    except AttributeError:
        raise AbiMismatch(f"native kernel {where} exports no popnet_abi(); its ABI cannot be checked") \
            from None
    describe.restype, describe.argtypes = ctypes.c_char_p, []
    got, want = describe().decode().split("; "), expected_abi().split("; ")
    if got != want:
        diff = next(((g, w) for g, w in zip(got, want, strict=False) if g != w), None)
        g, w = diff or ("; ".join(got[len(want):]) or "nothing", "; ".join(want[len(got):]) or "nothing")
        raise AbiMismatch(f"native kernel ABI mismatch: kernels/popnet_abi.hpp has '{g}' where "
                          f"eoreps.zoo.native expects '{w}'; update ENTRY_POINTS or the header together")
    for name, (ret, args) in ENTRY_POINTS.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = _ctype(ret), [_ctype(a) for a in args]


@dataclass
class _Tensor:
    name: str
    size: int
    ctype: str = "V"  # V: LANES floats per value; VI: LANES ints (max-pool argmax); VU: LANES bf16 pairs
    grad: bool = False  # has a gradient buffer g<name>


@dataclass
class Program:
    """What the generator has written so far for one architecture (the state an :class:`OpEmitter` extends).

    ``cur`` is the tensor the next op reads (``x0``, the image, has no gradient); ``bwd`` is in forward
    order (written reversed); ``accum`` names the tensors whose gradient a backward accumulates (``+=``),
    which the backward pass zeroes first; ``act_off`` counts the dropout-stream values used per image.
    """

    offsets: dict[str, int]  # state_dict key -> offset in the flat parameter vector
    buffers: list[_Tensor]
    fwd: list[str] = field(default_factory=list)
    bwd: list[str] = field(default_factory=list)
    accum: list[str] = field(default_factory=list)
    cur: str = "x0"
    act_off: int = 0
    n_tensors: int = 0
    bf16: bool = False  # conv+pool layers in bf16 (kernels/popnet_bf16.hpp)

    @property
    def dgrad(self) -> bool:
        """True when the current input has a gradient (it is not the image)."""
        return self.cur != "x0"

    @property
    def gin(self) -> str:
        """The current input's gradient buffer as a C++ argument (``nullptr`` for the image)."""
        return f"n.g{self.cur}" if self.dgrad else "nullptr"

    def new(self, size: int) -> str:
        """A new layer output of ``size`` values (with a gradient buffer)."""
        self.n_tensors += 1
        self.buffers.append(_Tensor(f"t{self.n_tensors}", size, grad=True))
        return f"t{self.n_tensors}"

    def side(self, of: str, suffix: str, size: int, ctype: str = "V") -> str:
        """A buffer the forward pass keeps for the backward pass (no gradient)."""
        self.buffers.append(_Tensor(of + suffix, size, ctype))
        return of + suffix

    def params(self, layer: str) -> tuple[str, str, str]:
        """C++ arguments of ``layer``'s parameters: weight; weight, bias; their gradients."""
        wo, bo = self.offsets[layer + ".weight"], self.offsets[layer + ".bias"]
        return f"W + {wo}", f"W + {wo}, W + {bo}", f"G + {wo}, G + {bo}"

    def advance(self, out: str, accumulates: bool) -> None:
        """``out`` becomes the current tensor; ``accumulates``: the op's backward adds into the input's
        gradient (so it must be zeroed first)."""
        if accumulates and self.dgrad:
            self.accum.append(self.cur)
        self.cur = out


class OpEmitter:
    """How the generator writes one op kind: one entry of :data:`EMITTERS` per kind.

    :meth:`emit` appends the op's buffers and its forward and backward statements (calls of the layer
    templates in ``kernels/popnet.hpp`` with the layer's constant shape, taken from the shared shape pass
    :func:`eoreps.zoo.architectures.layer_shapes`) and advances ``prog.cur`` to the op's output.
    """

    def fuses(self, nxt: Op) -> bool:
        """True when the op ``nxt`` right after this one is generated as part of it (then skipped)."""
        return False

    def emit(self, prog: Program, layer: Layer, fused: Layer | None) -> None:
        """Write ``layer`` (and ``fused``, the next layer, when :meth:`fuses` accepted it)."""
        raise NotImplementedError


class _Conv(OpEmitter):
    """Valid convolution; a 2x2 max-pool right after it is fused into it (only pooled values are stored)."""

    def fuses(self, nxt: Op) -> bool:
        return nxt.kind == "pool" and nxt.k == 2

    def emit(self, prog: Program, layer: Layer, fused: Layer | None) -> None:
        op, (cin, hh, ww) = layer.op, layer.in_shape
        w_, wb, gwb = prog.params(op.name)
        targs, dgrad = f"{cin}, {op.cout}, {hh}, {ww}, {op.k}", str(prog.dgrad).lower()
        cur, gin = prog.cur, prog.gin
        size = math.prod((fused or layer).out_shape)
        out = prog.new(size)
        if fused is not None and prog.bf16:  # bf16 products; pair buffers as in kernels/popnet_bf16.hpp
            am = prog.side(out, "_am", size, "VI")
            hp = prog.side(out, "_hp", cin * hh * ww, "VU")
            wp = prog.side(out, "_wp", op.cout * cin * op.k * ((op.k + 1) // 2), "VU")
            wt = prog.side(out, "_wt", max(1, op.cout // 2 * cin * op.k * op.k), "VU")
            prog.fwd.append(f"conv_pool_fwd_bf<{targs}>(n.{cur}, {wb}, n.{out}, n.{am}, n.{hp}, n.{wp});")
            prog.bwd.append(f"conv_pool_bwd_bf<{targs}, {dgrad}>(n.{hp}, {w_}, n.g{out}, n.{am}, {gwb}, "
                            f"{gin}, n.{wt});")
        elif fused is not None:
            am = prog.side(out, "_am", size, "VI")
            prog.fwd.append(f"conv_pool_fwd<{targs}>(n.{cur}, {wb}, n.{out}, n.{am});")
            prog.bwd.append(
                f"conv_pool_bwd<{targs}, {dgrad}>(n.{cur}, {w_}, n.g{out}, n.{am}, {gwb}, {gin});")
        else:
            prog.fwd.append(f"conv_fwd<{targs}>(n.{cur}, {wb}, n.{out});")
            prog.bwd.append(f"conv_bwd<{targs}, {dgrad}>(n.{cur}, {w_}, n.g{out}, {gwb}, {gin});")
        prog.advance(out, accumulates=True)


class _Act(OpEmitter):
    """The member's activation then dropout (per-lane activation code and rate, see ``act_fwd``)."""

    def emit(self, prog: Program, layer: Layer, fused: Layer | None) -> None:
        size, cur = math.prod(layer.in_shape), prog.cur
        out = prog.new(size)
        d = prog.side(out, "_d", size)
        prog.fwd.append(f"act_fwd<{size}>(ln, n.{cur}, n.{out}, n.{d}, ctr + {prog.act_off});")
        if prog.dgrad:  # no gradient for the input image (an activation straight on the input)
            prog.bwd.append(f"mul_into<{size}>(n.g{out}, n.{d}, n.g{cur});")
        prog.act_off += size
        prog.advance(out, accumulates=False)


class _Flatten(OpEmitter):
    """Free: a (C, H, W) tensor is stored C-major, which is torch's ``flatten(1)`` order."""

    def emit(self, prog: Program, layer: Layer, fused: Layer | None) -> None:
        pass


class _Linear(OpEmitter):
    """Fully connected layer on the (flattened) input."""

    def emit(self, prog: Program, layer: Layer, fused: Layer | None) -> None:
        op, cur, gin, dgrad = layer.op, prog.cur, prog.gin, str(prog.dgrad).lower()
        out = prog.new(op.cout)
        w_, wb, gwb = prog.params(op.name)
        prog.fwd.append(f"linear_fwd<{op.cin}, {op.cout}>(n.{cur}, {wb}, n.{out});")
        prog.bwd.append(f"linear_bwd<{op.cin}, {op.cout}, {dgrad}>(n.{cur}, {w_}, n.g{out}, {gwb}, {gin});")
        prog.advance(out, accumulates=True)


# op kind -> its emitter; adding an op kind = a layer template in kernels/popnet.hpp, a shape rule in
# eoreps.zoo.architectures.SHAPE_RULES and one entry here. "pool" has no entry of its own: it is generated
# only fused into the convolution before it.
EMITTERS: dict[str, OpEmitter] = {"conv": _Conv(), "act": _Act(), "flatten": _Flatten(), "linear": _Linear()}

# the per-architecture part of a kernel; kernels/popnet_abi.hpp (included last) adds the entry points
_SOURCE = """{includes}
using namespace popnet;
namespace {{
struct Net {{
{decl}
}};
constexpr int D = {n_params};
constexpr int ACTS = {acts};
constexpr int INPUTS = {inputs};
constexpr int CLASSES = {classes};

inline void forward(const Lanes& ln, const V* W, Net& n, uint32_t ctr) {{
  {fwd}
}}

inline void backward(const V* W, V* G, Net& n) {{
  {zero}
  {bwd}
}}

inline V* logits(Net& n) {{ return n.{out}; }}
inline V* logits_grad(Net& n) {{ return n.g{out}; }}
}}  // namespace

#include "popnet_abi.hpp"
"""


def _lines(stmts: list[str]) -> str:
    return "\n".join("  " + s for s in stmts).strip()


def generate_source(arch: Arch, precision: str = "fp32") -> str:
    """C++ source of the kernel for ``arch``: only what depends on the architecture (raises
    :class:`Unsupported`). Shapes come from :meth:`Arch.layers`, each op's code from :data:`EMITTERS`.
    ``precision='bf16'``: the conv+pool layers use the bf16 templates (compile with :data:`BF16_FLAGS`)."""
    if precision not in KERNEL_PRECISIONS:
        raise ValueError(f"precision must be one of {KERNEL_PRECISIONS}, got {precision!r}")
    try:
        layers = arch.layers()
    except ShapeError as e:
        raise Unsupported(str(e)) from None
    offsets, n_params = {}, 0
    for key, shp in arch.param_shapes():
        offsets[key] = n_params
        n_params += math.prod(shp)
    inputs = math.prod(arch.in_shape)
    prog = Program(offsets, [_Tensor("x0", inputs)], bf16=precision == "bf16")  # x0, the image: no gradient
    i = 0
    while i < len(layers):
        emitter = EMITTERS.get(layers[i].op.kind)
        if emitter is None:  # e.g. a pool not right after a conv
            raise Unsupported(f"op {layers[i].op.kind} at position {i}")
        fused = layers[i + 1] if i + 1 < len(layers) and emitter.fuses(layers[i + 1].op) else None
        emitter.emit(prog, layers[i], fused)
        i += 2 if fused is not None else 1
    shape = layers[-1].out_shape if layers else tuple(arch.in_shape)
    if shape != (arch.num_classes,):
        raise Unsupported(f"output shape {shape}")
    if not prog.dgrad:
        raise Unsupported("no layer computes the output")
    sizes = {b.name: b.size for b in prog.buffers}
    decl = []
    for b in prog.buffers:
        decl.append(f"  {b.ctype} {b.name}[{b.size}];")
        if b.grad:
            decl.append(f"  V g{b.name}[{b.size}];")
    zero = [f"zero<{sizes[nm]}>(n.g{nm});" for nm in dict.fromkeys(prog.accum)]
    includes = '#include "popnet.hpp"' + ('\n#include "popnet_bf16.hpp"' if prog.bf16 else "")
    return _SOURCE.format(includes=includes, decl="\n".join(decl), n_params=n_params,
                          acts=max(prog.act_off, 1), inputs=inputs, classes=arch.num_classes,
                          fwd=_lines(prog.fwd), zero=_lines(zero),
                          bwd=_lines(list(reversed(prog.bwd))), out=prog.cur)


def _cache_dir() -> Path:
    return cache_dir("kernels")


def _cpu_id() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next(line for line in lines if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = ""
    return platform.machine() + flags


_LOCK = threading.Lock()
_LOADED: dict[str, ctypes.CDLL] = {}


def compiler() -> str | None:
    """The C++ compiler used (``$CXX`` when set, else ``c++`` / ``g++`` on PATH), or None."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    for cand in ("c++", "g++"):
        if shutil.which(cand):
            return cand
    return None


def bf16_missing() -> str | None:
    """Why the bf16 kernel cannot run on this CPU (``None`` when it can): it needs AVX512-BF16, and lane
    groups of 16 (one zmm register of bf16 pairs)."""
    if BF16_FLAG not in _precision.cpu_flags():
        return f"the native bf16 kernel needs a CPU with {BF16_FLAG} (VDPBF16PS); this CPU lacks it"
    if LANES != 16:
        why = f"{LANES_ENV}={LANES}" if os.environ.get(LANES_ENV, "").strip() else "this CPU's SIMD width"
        return f"the native bf16 kernel needs lane groups of 16; {why} gives {LANES}"
    return None


def _require_compiler() -> str:
    cxx = compiler()
    if cxx is None:
        if os.environ.get("CXX"):
            raise NativeUnavailable(f"CXX={os.environ['CXX']} is not an executable compiler")
        raise NativeUnavailable("no C++ compiler found (install g++ or set CXX)")
    return cxx


def source_key(src: str, flags: list[str], cxx: str | None = None) -> str:
    """The digest a compiled C++ source is cached under: the source, every header in ``kernels/``, the
    compiler (``cxx``, default :func:`compiler`), its flags and the CPU (:func:`_cpu_id`)."""
    headers = [p.read_text() for p in sorted(_KERNELS.glob("*.hpp"))]
    cxx = cxx if cxx is not None else _require_compiler()
    return bytes_digest("\0".join([src, *headers, cxx, " ".join(flags), _cpu_id()]).encode(), 20)


def _build_plan(arch: Arch, precision: str) -> tuple[str, list[str], str, str]:
    """``(source, flags, compiler, key)`` of ``arch``'s kernel in ``precision``; raises like :func:`load`."""
    if _LANES_ERROR:
        raise NativeUnavailable(_LANES_ERROR)
    if precision == "bf16" and (missing := bf16_missing()):
        raise NativeUnavailable(missing)
    try:
        src = generate_source(arch, precision)
    except Unsupported as e:
        raise NativeUnavailable(
            f"architecture {arch.name} is not supported by the native engine ({e})") from None
    cxx = _require_compiler()
    flags = [*_FLAGS, f"-DPOPNET_LANES={LANES}", *(BF16_FLAGS if precision == "bf16" else [])]
    return src, flags, cxx, source_key(src, flags, cxx)


def kernel_key(arch: Arch, precision: str = "fp32") -> str:
    """The digest :func:`load` caches ``arch``'s kernel in ``precision`` under (source, headers, compiler,
    flags, CPU): whatever changes the compiled code changes it. Raises :class:`NativeUnavailable` like
    :func:`load` (without compiling anything)."""
    return _build_plan(arch, precision)[3]


def load(arch: Arch, precision: str = "fp32") -> ctypes.CDLL:
    """The compiled kernel for ``arch`` in ``precision`` (``fp32`` or ``bf16``; compiled on first use,
    then cached on disk and in memory).

    Raises :class:`NativeUnavailable` with the reason: an architecture the generator does not support,
    bf16 on a CPU without AVX512-BF16, no C++ compiler, or a failed compilation.
    """
    src, flags, cxx, key = _build_plan(arch, precision)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _compile_and_load(src, cxx, key, flags)
        return _LOADED[key]


def available(arch: Arch | None = None) -> bool:
    """True when the native engine can run ``arch`` here (default: the ``mlp`` architecture)."""
    from eoreps.zoo.architectures import make_arch

    try:
        load(arch if arch is not None else make_arch("mlp"))
        return True
    except NativeUnavailable:
        return False


def _compile_and_load(src: str, cxx: str, key: str, flags: list[str]) -> ctypes.CDLL:
    out = _cache_dir() / f"popnet_{key}.so"
    try:
        if not out.exists():
            _compile(src, cxx, out, flags)
        try:
            lib = ctypes.CDLL(str(out))
        except OSError:  # a damaged cache entry (e.g. truncated by a full disk): build it again, once
            out.unlink()
            _compile(src, cxx, out, flags)
            lib = ctypes.CDLL(str(out))
    except OSError as e:  # cache not writable, a noexec mount, ...: the engine cannot run here
        raise NativeUnavailable(f"cannot build or load {out}: {e}") from None
    check_abi(lib, str(out))
    return lib


def _compile(src: str, cxx: str, out: Path, flags: list[str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        cpp = Path(tmp) / "net.cpp"
        cpp.write_text(src)
        so = Path(tmp) / "net.so"
        try:
            res = subprocess.run([cxx, *flags, "-I", str(_KERNELS), str(cpp), "-o", str(so)],
                                 capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NativeUnavailable(f"{cxx} failed to run: {e}") from None
        if res.returncode != 0 or not so.exists():
            lines = res.stderr.strip().splitlines()
            first = next((ln for ln in lines if "error" in ln), lines[0] if lines else "no output")
            raise NativeUnavailable(f"{cxx} could not compile the kernel: {first.strip()}")
        os.replace(so, out)  # atomic: concurrent builders never see a partial library


def _ptr(t: torch.Tensor | np.ndarray) -> int:
    if isinstance(t, np.ndarray):
        return t.ctypes.data
    return t.data_ptr()


class NativeGroups:
    """P members laid out as ceil(P/LANES) lane groups, trained an epoch at a time by the native kernel.

    ``weights``/``exp_avg``/``exp_avg_sq``: (G, D, LANES) float32 (member ``p`` is lane ``p % LANES`` of
    group ``p // LANES``; padding lanes train a zero model with learning rate 0 and are ignored).
    """

    def __init__(self, lib: ctypes.CDLL, P: int, D: int, lr: torch.Tensor, wd: torch.Tensor,
                 adam: torch.Tensor, act: torch.Tensor, drop: torch.Tensor, threads: int,
                 num_classes: int) -> None:
        if int(lib.popnet_params()) != D:
            raise ValueError(f"kernel expects {lib.popnet_params()} parameters, got {D}")
        self.lib, self.P, self.D, self.K = lib, P, D, int(num_classes)
        self.lanes = LANES  # the width the kernel was compiled for (load() reads the same global)
        self.G = (P + self.lanes - 1) // self.lanes
        pad = self.G * self.lanes - P

        def lanes(v: torch.Tensor, dtype: torch.dtype, fill: float = 0) -> torch.Tensor:
            v = v.to(dtype)
            return torch.cat([v, torch.full((pad,), fill, dtype=dtype)]).view(self.G, self.lanes).contiguous()

        self.lr = lanes(lr, torch.float32)
        self.wd = lanes(wd, torch.float32)
        self.adam = lanes(adam, torch.int32)
        self.act = lanes(act, torch.int32, fill=float(act[0]))
        self.drop = lanes(drop, torch.float32)
        self.threads = max(1, int(threads))

    @classmethod
    def for_eval(cls, lib: ctypes.CDLL, P: int, D: int, act: torch.Tensor, threads: int,
                 num_classes: int) -> NativeGroups:
        """Groups that only evaluate (no optimizer settings, no dropout)."""
        zeros = torch.zeros(P)
        return cls(lib, P, D, zeros, zeros, zeros, act, zeros, threads, num_classes)

    def to_lanes(self, rows: torch.Tensor) -> torch.Tensor:
        """(P, D) -> (G, D, LANES) contiguous float32 (zero padding lanes)."""
        out = torch.zeros(self.G * self.lanes, self.D, dtype=torch.float32)
        out[: self.P] = rows
        return out.view(self.G, self.lanes, self.D).transpose(1, 2).contiguous()

    def from_lanes(self, lanes: torch.Tensor) -> torch.Tensor:
        """(G, D, LANES) -> (P, D)."""
        return lanes.transpose(1, 2).reshape(self.G * self.lanes, self.D)[: self.P].contiguous()

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, orders: np.ndarray, batch_size: int,
                    weights: torch.Tensor, exp_avg: torch.Tensor | None, exp_avg_sq: torch.Tensor | None,
                    step0: int, seeds: np.ndarray) -> None:
        """One epoch for every group, in place.

        ``x``: (N, C*H*W) float32 contiguous training images; ``y``: (N,) int32; ``orders``: (P, n) int32,
        member p's visiting order; ``seeds``: (P,) uint32 dropout streams; ``step0``: optimizer steps
        taken before this epoch.
        """
        n = orders.shape[1]
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self._check(x, y)
        if n and (int(orders.min()) < 0 or int(orders.max()) >= len(x)):
            raise ValueError(f"training order indexes outside the {len(x)} images")
        pad = self.G * self.lanes - self.P
        if pad:
            orders = np.concatenate([orders, np.repeat(orders[:1], pad, axis=0)])
            seeds = np.concatenate([seeds, np.zeros(pad, dtype=np.uint32)])
        orders = np.ascontiguousarray(orders, dtype=np.int32).reshape(self.G, self.lanes, n)
        seeds = np.ascontiguousarray(seeds, dtype=np.uint32).reshape(self.G, self.lanes)
        moments = exp_avg is not None
        if moments != (exp_avg_sq is not None):
            raise ValueError("give both Adam moments or neither")
        for t in (weights, exp_avg, exp_avg_sq):
            if t is not None:
                self._check_lanes(t)
        stride = self.D * self.lanes * 4

        def run(g: int) -> int:
            return self.lib.popnet_train(
                _ptr(x), _ptr(y), _ptr(orders[g]), n, batch_size,
                weights.data_ptr() + g * stride,
                exp_avg.data_ptr() + g * stride if moments else None,  # type: ignore[union-attr]
                exp_avg_sq.data_ptr() + g * stride if moments else None,  # type: ignore[union-attr]
                _ptr(self.lr[g]), _ptr(self.wd[g]), _ptr(self.adam[g]), _ptr(self.act[g]), _ptr(self.drop[g]),
                _ptr(seeds[g]), int(moments), int(step0))

        self._map(run)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor,
                 weights: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Mean cross-entropy and accuracy (P,) of every member on ``x`` (N, C*H*W) float32 contiguous,
        ``y`` (N,) int32; ``weights`` (G, D, LANES) lane layout. No dropout (evaluation mode)."""
        n = int(x.shape[0])
        self._check(x, y)
        self._check_lanes(weights)
        loss = np.zeros((self.G, self.lanes), dtype=np.float64)
        correct = np.zeros((self.G, self.lanes), dtype=np.int64)
        stride = self.D * self.lanes * 4

        def run(g: int) -> int:
            return self.lib.popnet_eval(_ptr(x), _ptr(y), n, weights.data_ptr() + g * stride,
                                        _ptr(self.act[g]), loss[g].ctypes.data, correct[g].ctypes.data)

        self._map(run)
        n = max(1, n)
        return loss.reshape(-1)[: self.P] / n, correct.reshape(-1)[: self.P] / n

    def _check_lanes(self, t: torch.Tensor) -> None:
        if (t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous()
                or t.shape != (self.G, self.D, self.lanes) or t.data_ptr() % 64):
            raise ValueError(f"lane buffers must be CPU float32 ({self.G}, {self.D}, {self.lanes}), "
                             f"contiguous, 64-byte aligned; got {t.dtype} {tuple(t.shape)} on {t.device}")

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The kernel indexes memory with these: wrong dtypes, layouts or labels must never reach it."""
        if x.device.type != "cpu" or y.device.type != "cpu":
            raise ValueError("native kernel needs CPU tensors")
        if x.dtype != torch.float32 or not x.is_contiguous() or x.dim() != 2 or y.dtype != torch.int32 \
                or not y.is_contiguous() or len(y) != len(x):
            raise ValueError("native kernel needs x (N, C*H*W) float32 and y (N,) int32, both contiguous")
        if x.shape[1] != self.lib.popnet_inputs():
            raise ValueError(
                f"native kernel needs {self.lib.popnet_inputs()} values per image, got {x.shape[1]}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.K):
            raise ValueError(f"labels must lie in 0..{self.K - 1}")

    def _map(self, fn) -> None:
        if self.threads == 1 or self.G == 1:
            codes = [fn(g) for g in range(self.G)]
        else:
            with ThreadPoolExecutor(self.threads) as ex:  # ctypes releases the GIL during the call
                codes = list(ex.map(fn, range(self.G)))
        if any(codes):
            raise RuntimeError(f"native zoo kernel failed with codes {codes}")
