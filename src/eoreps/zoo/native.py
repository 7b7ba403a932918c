"""Native engine: a whole training epoch of 16 zoo members per call, compiled for the architecture.

Why hand-written (measured in ``docs/zoo.md``): the PyTorch population path folds members into the
channels of grouped convolutions; its activations stream through memory several times per step and
oneDNN's grouped kernel for the 1-input-channel first layer runs at ~32 GFLOP/s, which capped the
population at ~4.6x a one-at-a-time loop. Here one SIMD lane is one member (``kernels/popnet.hpp``):
a group of 16 members trains a whole epoch (gather, forward, backward, optimizer) inside one C++ call,
with weights, gradients and activations resident in the core's cache; groups run on a thread pool.

The C++ for an architecture is *generated* from its op list (:func:`generate_source`): every layer is
a template instantiated with the layer's constant shape, so loops are fully known to the compiler. It is
compiled once per (source, compiler, CPU) with the system C++ compiler (``c++``/``g++``; override with
``CXX``) into ``$EOREPS_CACHE/kernels`` (default ``~/.cache/eoreps/kernels``; ~1 s) and loaded with
``ctypes``. When no compiler works, :func:`load` raises :class:`NativeUnavailable` and
``TrainOptions(engine='auto')`` falls back to the PyTorch engine.

Numerics: float32 throughout (no bf16), so a member matches its lone float32 run to rounding.
Dropout masks come from a counter-based hash stream per member and epoch (statistically, not bitwise,
what ``torch.nn.functional.dropout`` would draw).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eoreps.zoo.architectures import ACTIVATIONS, Arch

LANES = 16
ACT_CODES = {name: i for i, name in enumerate(ACTIVATIONS)}  # order of popnet::Act
_HEADER = Path(__file__).parent / "kernels" / "popnet.hpp"
_FLAGS = ["-O3", "-march=native", "-std=gnu++17", "-ffp-contract=fast", "-fno-math-errno", "-shared", "-fPIC"]


class Unsupported(ValueError):
    """The architecture has a layer sequence the native engine does not generate."""


class NativeUnavailable(RuntimeError):
    """The native engine cannot run here (reason in the message)."""


@dataclass
class _Tensor:
    name: str
    size: int
    ctype: str = "V"  # V: 16 floats per value; VI: 16 ints (max-pool argmax)
    grad: bool = False  # has a gradient buffer g<name>


def generate_source(arch: Arch) -> str:
    """C++ source of ``popnet_train`` for ``arch`` (raises :class:`Unsupported`)."""
    c, h, w = arch.in_shape
    shape: tuple[int, ...] = (c, h, w)
    buffers: list[_Tensor] = [_Tensor("x0", c * h * w)]  # the image: no gradient
    cur = "x0"
    fwd: list[str] = []
    bwd: list[str] = []  # in forward order; emitted reversed
    accum: list[str] = []  # tensors whose gradient a conv/linear backward accumulates (+=): zeroed first
    offsets = {}
    o = 0
    for key, shp in arch.param_shapes():
        offsets[key] = o
        o += int(np.prod(shp))
    n_params = o
    act_off = 0
    ops = list(arch.ops)
    i = 0
    n_tensors = 0

    def new(size: int) -> str:  # the next layer output (it has a gradient)
        nonlocal n_tensors
        n_tensors += 1
        buffers.append(_Tensor(f"t{n_tensors}", size, grad=True))
        return f"t{n_tensors}"

    def side(of: str, suffix: str, size: int, ctype: str = "V") -> str:  # kept for the backward pass
        buffers.append(_Tensor(of + suffix, size, ctype))
        return of + suffix

    def params(layer: str) -> tuple[str, str, str]:  # weight; weight, bias; their gradients
        wo, bo = offsets[layer + ".weight"], offsets[layer + ".bias"]
        return f"W + {wo}", f"W + {wo}, W + {bo}", f"G + {wo}, G + {bo}"

    while i < len(ops):
        op = ops[i]
        dgrad = cur != "x0"
        gin = f"n.g{cur}" if dgrad else "nullptr"
        if op.kind == "conv":
            if len(shape) != 3 or shape[0] != op.cin:
                raise Unsupported(f"conv {op.name} on shape {shape}")
            cin, hh, ww = shape
            oh, ow = hh - op.k + 1, ww - op.k + 1
            w_, wb, gwb = params(op.name)
            targs = f"{cin}, {op.cout}, {hh}, {ww}, {op.k}"
            pooled = i + 1 < len(ops) and ops[i + 1].kind == "pool" and ops[i + 1].k == 2
            shape = (op.cout, oh // 2, ow // 2) if pooled else (op.cout, oh, ow)
            out = new(int(np.prod(shape)))
            if pooled:
                am = side(out, "_am", int(np.prod(shape)), "VI")
                fwd.append(f"conv_pool_fwd<{targs}>(n.{cur}, {wb}, n.{out}, n.{am});")
                bwd.append(f"conv_pool_bwd<{targs}, {str(dgrad).lower()}>(n.{cur}, {w_}, n.g{out}, n.{am}, {gwb}, {gin});")
                i += 1
            else:
                fwd.append(f"conv_fwd<{targs}>(n.{cur}, {wb}, n.{out});")
                bwd.append(f"conv_bwd<{targs}, {str(dgrad).lower()}>(n.{cur}, {w_}, n.g{out}, {gwb}, {gin});")
            if dgrad:
                accum.append(cur)
            cur = out
        elif op.kind == "act":
            size = int(np.prod(shape))
            out = new(size)
            d = side(out, "_d", size)
            fwd.append(f"act_fwd<{size}>(ln, n.{cur}, n.{out}, n.{d}, ctr + {act_off});")
            if dgrad:  # no gradient for the input image (an activation straight on the input)
                bwd.append(f"mul_into<{size}>(n.g{out}, n.{d}, n.g{cur});")
            act_off += size
            cur = out
        elif op.kind == "flatten":
            shape = (int(np.prod(shape)),)
        elif op.kind == "linear":
            if int(np.prod(shape)) != op.cin:
                raise Unsupported(f"linear {op.name} on shape {shape}")
            out = new(op.cout)
            w_, wb, gwb = params(op.name)
            fwd.append(f"linear_fwd<{op.cin}, {op.cout}>(n.{cur}, {wb}, n.{out});")
            bwd.append(f"linear_bwd<{op.cin}, {op.cout}, {str(dgrad).lower()}>(n.{cur}, {w_}, n.g{out}, {gwb}, {gin});")
            if dgrad:
                accum.append(cur)
            shape = (op.cout,)
            cur = out
        else:  # a pool not right after a conv
            raise Unsupported(f"op {op.kind} at position {i}")
        i += 1
    if shape != (arch.num_classes,):
        raise Unsupported(f"output shape {shape}")
    sizes = {b.name: b.size for b in buffers}
    zero = [f"zero<{sizes[nm]}>(n.g{nm});" for nm in dict.fromkeys(accum)]
    decl = []
    for b in buffers:
        decl.append(f"  {b.ctype} {b.name}[{b.size}];")
        if b.grad:
            decl.append(f"  V g{b.name}[{b.size}];")
    body_bwd = list(reversed(bwd))
    k = arch.num_classes
    chw = c * h * w
    return f"""#include "popnet.hpp"
using namespace popnet;
namespace {{
struct Net {{
{chr(10).join(decl)}
}};
constexpr int D = {n_params};
constexpr int ACTS = {max(act_off, 1)};

inline void forward(const Lanes& ln, const V* W, Net& n, uint32_t ctr) {{
  {chr(10).join('  ' + s for s in fwd).strip()}
}}

inline void backward(const V* W, V* G, Net& n) {{
  {chr(10).join('  ' + s for s in zero).strip()}
  {chr(10).join('  ' + s for s in body_bwd).strip()}
}}
}}  // namespace

extern "C" int popnet_params() {{ return D; }}
extern "C" int popnet_inputs() {{ return {chw}; }}

// evaluation: every lane sees the same n_img images (X rows); mean-free sums per lane:
// loss[l] += cross-entropy (NaN when a logit is not finite), correct[l] += argmax == label
// (argmax as torch: first maximum, NaN counts as the maximum)
extern "C" int popnet_eval(const float* X, const int32_t* Y, int n_img, const float* Wf, const int32_t* act,
                           double* loss, int64_t* correct) {{
  Lanes ln = make_lanes(act, nullptr, nullptr, nullptr, nullptr, nullptr);
  const V* W = (const V*)Wf;
  Net* net = new Net();
  for (int i = 0; i < n_img; ++i) {{
    const float* src = X + (int64_t)i * {chw};
    for (int j = 0; j < {chw}; ++j) net->x0[j] = vs(src[j]);
    forward(ln, W, *net, 0);
    const V* lg = net->{cur};
    V best = lg[0];
    VI arg = VI{{}} + 0;
    for (int k = 1; k < {k}; ++k) {{
      VI gt = (lg[k] > best) | ((lg[k] != lg[k]) & (best == best));
      best = gt ? lg[k] : best;
      arg = gt ? VI{{}} + k : arg;
    }}
    // as torch's log-softmax: NaN when a logit is NaN (then best is NaN) or the maximum is infinite;
    // a -inf logit elsewhere is just a zero probability (and +inf loss when it is the label's)
    VI bad = (best != best) | (vabs(best) == __builtin_inff());
    V s = vs(0.0f);
    for (int k = 0; k < {k}; ++k) s += vexp(lg[k] - best);
    int y = Y[i];
    for (int l = 0; l < L; ++l) {{
      loss[l] += bad[l] ? NAN : (double)std::log(s[l]) + best[l] - lg[y][l];
      correct[l] += arg[l] == y;
    }}
  }}
  delete net;
  return 0;
}}

// activation + dropout of n_vec vectors of 16 lanes (for tests): a, d as in act_fwd
extern "C" void popnet_act(const float* z, float* a, float* d, int n_vec, const int32_t* act, const float* drop,
                           const uint32_t* seed, uint32_t ctr) {{
  Lanes ln = make_lanes(act, drop, seed, nullptr, nullptr, nullptr);
  for (int i = 0; i < n_vec; ++i) act_fwd<1>(ln, (const V*)z + i, (V*)a + i, (V*)d + i, ctr + (uint32_t)i);
}}

extern "C" int popnet_train(const float* X, const int32_t* Y, const int32_t* order, int n_img, int B,
                            float* Wf, float* Mf, float* Vf, const float* lr, const float* wd,
                            const int32_t* adam, const int32_t* act, const float* drop, const uint32_t* seed,
                            int moments, int64_t step0) {{
  Lanes ln = make_lanes(act, drop, seed, lr, wd, adam);
  V* W = (V*)Wf;
  V* M = (V*)Mf;
  V* Vm = (V*)Vf;
  Net* net = new Net();
  V* G = new V[D];
  int32_t idx[L];
  VI y;
  int64_t step = step0;
  for (int s = 0; s < n_img; s += B) {{
    int nb = n_img - s < B ? n_img - s : B;
    zero<D>(G);
    for (int b = 0; b < nb; ++b) {{
      for (int l = 0; l < L; ++l) {{ idx[l] = order[(int64_t)l * n_img + s + b]; y[l] = Y[idx[l]]; }}
      gather<{chw}>(X, idx, net->x0);
      forward(ln, W, *net, (uint32_t)(s + b) * (uint32_t)ACTS);
      ce_grad<{k}>(net->{cur}, y, 1.0f / nb, net->g{cur});
      backward(W, G, *net);
    }}
    ++step;
    opt_step(D, W, G, M, Vm, ln, moments != 0, (long)step);
  }}
  delete[] G;
  delete net;
  return 0;
}}
"""


def _cache_dir() -> Path:
    root = os.environ.get("EOREPS_CACHE")
    return Path(root) / "kernels" if root else Path.home() / ".cache" / "eoreps" / "kernels"


def _cpu_id() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
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


def load(arch: Arch) -> ctypes.CDLL:
    """The compiled kernel for ``arch`` (compiled on first use, then cached on disk and in memory).

    Raises :class:`NativeUnavailable` with the reason: an architecture the generator does not support,
    no C++ compiler, or a failed compilation.
    """
    try:
        src = generate_source(arch)
    except Unsupported as e:
        raise NativeUnavailable(f"architecture {arch.name} is not supported by the native engine ({e})") from None
    cxx = compiler()
    if cxx is None:
        if os.environ.get("CXX"):
            raise NativeUnavailable(f"CXX={os.environ['CXX']} is not an executable compiler")
        raise NativeUnavailable("no C++ compiler found (install g++ or set CXX)")
    header = _HEADER.read_text()
    key = hashlib.sha256("\0".join([src, header, cxx, " ".join(_FLAGS), _cpu_id()]).encode()).hexdigest()[:20]
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _compile_and_load(src, cxx, key)
        return _LOADED[key]


def available(arch: Arch | None = None) -> bool:
    """True when the native engine can run ``arch`` here (default: the ``mlp`` architecture)."""
    from eoreps.zoo.architectures import make_arch

    try:
        load(arch if arch is not None else make_arch("mlp"))
        return True
    except NativeUnavailable:
        return False


def _compile_and_load(src: str, cxx: str, key: str) -> ctypes.CDLL:
    out = _cache_dir() / f"popnet_{key}.so"
    try:
        if not out.exists():
            _compile(src, cxx, out)
        try:
            lib = ctypes.CDLL(str(out))
        except OSError:  # a damaged cache entry (e.g. truncated by a full disk): build it again, once
            out.unlink()
            _compile(src, cxx, out)
            lib = ctypes.CDLL(str(out))
    except OSError as e:  # cache not writable, a noexec mount, ...: the engine cannot run here
        raise NativeUnavailable(f"cannot build or load {out}: {e}") from None
    f = lib.popnet_train
    f.restype = ctypes.c_int
    ptr, i32 = ctypes.c_void_p, ctypes.c_int
    f.argtypes = [ptr, ptr, ptr, i32, i32, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i32, ctypes.c_int64]
    lib.popnet_params.restype = ctypes.c_int
    lib.popnet_inputs.restype = ctypes.c_int
    lib.popnet_eval.restype = ctypes.c_int
    lib.popnet_eval.argtypes = [ptr, ptr, i32, ptr, ptr, ptr, ptr]
    lib.popnet_act.restype = None
    lib.popnet_act.argtypes = [ptr, ptr, ptr, i32, ptr, ptr, ptr, ctypes.c_uint32]
    return lib


def _compile(src: str, cxx: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        cpp = Path(tmp) / "net.cpp"
        cpp.write_text(src)
        so = Path(tmp) / "net.so"
        try:
            res = subprocess.run([cxx, *_FLAGS, "-I", str(_HEADER.parent), str(cpp), "-o", str(so)],
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
    """P members laid out as ceil(P/16) lane groups, trained an epoch at a time by the native kernel.

    ``weights``/``exp_avg``/``exp_avg_sq``: (G, D, 16) float32 (member ``p`` is lane ``p % 16`` of
    group ``p // 16``; padding lanes train a zero model with learning rate 0 and are ignored).
    """

    def __init__(self, lib: ctypes.CDLL, P: int, D: int, lr: torch.Tensor, wd: torch.Tensor, adam: torch.Tensor,
                 act: torch.Tensor, drop: torch.Tensor, threads: int, num_classes: int) -> None:
        if int(lib.popnet_params()) != D:
            raise ValueError(f"kernel expects {lib.popnet_params()} parameters, got {D}")
        self.lib, self.P, self.D, self.K = lib, P, D, int(num_classes)
        self.G = (P + LANES - 1) // LANES
        pad = self.G * LANES - P

        def lanes(v: torch.Tensor, dtype: torch.dtype, fill: float = 0) -> torch.Tensor:
            v = v.to(dtype)
            return torch.cat([v, torch.full((pad,), fill, dtype=dtype)]).view(self.G, LANES).contiguous()

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
        """(P, D) -> (G, D, 16) contiguous float32 (zero padding lanes)."""
        out = torch.zeros(self.G * LANES, self.D, dtype=torch.float32)
        out[: self.P] = rows
        return out.view(self.G, LANES, self.D).transpose(1, 2).contiguous()

    def from_lanes(self, lanes: torch.Tensor) -> torch.Tensor:
        """(G, D, 16) -> (P, D)."""
        return lanes.transpose(1, 2).reshape(self.G * LANES, self.D)[: self.P].contiguous()

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, orders: np.ndarray, batch_size: int, weights: torch.Tensor,
                    exp_avg: torch.Tensor | None, exp_avg_sq: torch.Tensor | None, step0: int,
                    seeds: np.ndarray) -> None:
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
        pad = self.G * LANES - self.P
        if pad:
            orders = np.concatenate([orders, np.repeat(orders[:1], pad, axis=0)])
            seeds = np.concatenate([seeds, np.zeros(pad, dtype=np.uint32)])
        orders = np.ascontiguousarray(orders, dtype=np.int32).reshape(self.G, LANES, n)
        seeds = np.ascontiguousarray(seeds, dtype=np.uint32).reshape(self.G, LANES)
        moments = exp_avg is not None
        if moments != (exp_avg_sq is not None):
            raise ValueError("give both Adam moments or neither")
        for t in (weights, exp_avg, exp_avg_sq):
            if t is not None:
                self._check_lanes(t)
        stride = self.D * LANES * 4

        def run(g: int) -> int:
            return self.lib.popnet_train(
                _ptr(x), _ptr(y), _ptr(orders[g]), n, batch_size,
                weights.data_ptr() + g * stride,
                exp_avg.data_ptr() + g * stride if moments else None,  # type: ignore[union-attr]
                exp_avg_sq.data_ptr() + g * stride if moments else None,  # type: ignore[union-attr]
                _ptr(self.lr[g]), _ptr(self.wd[g]), _ptr(self.adam[g]), _ptr(self.act[g]), _ptr(self.drop[g]),
                _ptr(seeds[g]), int(moments), int(step0))

        self._map(run)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Mean cross-entropy and accuracy (P,) of every member on ``x`` (N, C*H*W) float32 contiguous,
        ``y`` (N,) int32; ``weights`` (G, D, 16) lane layout. No dropout (evaluation mode)."""
        n = int(x.shape[0])
        self._check(x, y)
        self._check_lanes(weights)
        loss = np.zeros((self.G, LANES), dtype=np.float64)
        correct = np.zeros((self.G, LANES), dtype=np.int64)
        stride = self.D * LANES * 4

        def run(g: int) -> int:
            return self.lib.popnet_eval(_ptr(x), _ptr(y), n, weights.data_ptr() + g * stride, _ptr(self.act[g]),
                                        loss[g].ctypes.data, correct[g].ctypes.data)

        self._map(run)
        n = max(1, n)
        return loss.reshape(-1)[: self.P] / n, correct.reshape(-1)[: self.P] / n

    def _check_lanes(self, t: torch.Tensor) -> None:
        if (t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous()
                or t.shape != (self.G, self.D, LANES) or t.data_ptr() % 64):
            raise ValueError(f"lane buffers must be CPU float32 ({self.G}, {self.D}, {LANES}), contiguous, "
                             f"64-byte aligned; got {t.dtype} {tuple(t.shape)} on {t.device}")

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The kernel indexes memory with these: wrong dtypes, layouts or labels must never reach it."""
        if x.device.type != "cpu" or y.device.type != "cpu":
            raise ValueError("native kernel needs CPU tensors")
        if x.dtype != torch.float32 or not x.is_contiguous() or x.dim() != 2 or y.dtype != torch.int32 \
                or not y.is_contiguous() or len(y) != len(x):
            raise ValueError("native kernel needs x (N, C*H*W) float32 and y (N,) int32, both contiguous")
        if x.shape[1] != self.lib.popnet_inputs():
            raise ValueError(f"native kernel needs {self.lib.popnet_inputs()} values per image, got {x.shape[1]}")
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
