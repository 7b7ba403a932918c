"""The native engine (compiled lane-per-member kernel): activations, dropout, every
architecture, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.zoo import native
from eoreps.zoo.architectures import ACTIVATIONS, Arch, Op, make_arch
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.grid import Member
from eoreps.zoo.population import PopulationTrainer, TrainOptions, resolve_options

needs_native = pytest.mark.skipif(not native.available(), reason="no C++ compiler")


def _act(lib, z: torch.Tensor, codes, drop, seeds, ctr: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Run popnet's activation + dropout on z (n, LANES)."""
    z = z.float().contiguous()
    a, d = torch.empty_like(z), torch.empty_like(z)
    codes = torch.as_tensor(codes, dtype=torch.int32)
    drop = torch.as_tensor(drop, dtype=torch.float32)
    seeds = np.ascontiguousarray(seeds, dtype=np.uint32)
    lib.popnet_act(z.data_ptr(), a.data_ptr(), d.data_ptr(), z.shape[0], codes.data_ptr(), drop.data_ptr(),
                   seeds.ctypes.data, ctr)
    return a, d


@needs_native
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_and_derivative_match_torch(name):
    lib, lanes = native.load(make_arch("mlp")), native.LANES
    z = torch.linspace(-12, 12, lanes * 301).view(-1, lanes)
    a, d = _act(lib, z, [native.ACT_CODES[name]] * lanes, [0.0] * lanes, [0] * lanes)
    zz = z.double().requires_grad_(True)
    want = ACTIVATIONS[name](zz)
    (grad,) = torch.autograd.grad(want.sum(), zz)
    assert (a.double() - want.detach()).abs().max().item() < 5e-7
    assert (d.double() - grad).abs().max().item() < 5e-7
    # NaN propagates as in torch: a diverged member must stay visibly diverged
    a, _ = _act(lib, torch.full((1, lanes), float("nan")), [native.ACT_CODES[name]] * lanes, [0.0] * lanes,
                [0] * lanes)
    assert torch.isnan(a).all()


@needs_native
def test_mixed_activations_within_a_lane_group():
    lib, lanes = native.load(make_arch("mlp")), native.LANES
    names = list(ACTIVATIONS)
    codes = [native.ACT_CODES[names[i % 4]] for i in range(lanes)]
    z = torch.randn(50, lanes)
    a, _ = _act(lib, z, codes, [0.0] * lanes, [0] * lanes)
    for lane in range(lanes):
        want = ACTIVATIONS[names[lane % 4]](z[:, lane])
        assert torch.allclose(a[:, lane], want, atol=5e-7)


@needs_native
def test_dropout_keeps_1_minus_p_scaled_and_lanes_differ():
    lib, lanes = native.load(make_arch("mlp")), native.LANES
    p = [0.0, 0.1, 0.5, 0.9] * (lanes // 4) if lanes >= 8 else [0.0, 0.5, 0.9, 0.5]
    i, j = [lane for lane in range(lanes) if p[lane] == 0.5][:2]  # two lanes with the same p
    n, relu, seeds = 20_000, [native.ACT_CODES["relu"]] * lanes, np.arange(lanes) * 7919 + 1
    a, d = _act(lib, torch.ones(n, lanes), relu, p, seeds)
    for lane in range(lanes):
        kept = a[:, lane] > 0
        assert abs(kept.float().mean().item() - (1 - p[lane])) < 0.015  # ~4 sigma at n = 20,000
        assert torch.allclose(a[kept, lane], torch.full((int(kept.sum()),), 1 / (1 - p[lane])))
        assert torch.equal(d[:, lane], a[:, lane])  # relu'(1) = 1, times the same mask
    # lanes with the same p draw different masks (independent streams), and the stream moves with ctr
    assert (a[:, i] > 0).ne(a[:, j] > 0).float().mean() > 0.3
    b, _ = _act(lib, torch.ones(n, lanes), relu, p, seeds, ctr=n)
    assert (a[:, i] > 0).ne(b[:, i] > 0).float().mean() > 0.3


@pytest.mark.parametrize("flags,lanes", [({"avx512f", "avx2", "avx"}, 16), ({"avx2", "avx", "fma"}, 8),
                                         ({"avx"}, 8), ({"sse4_2"}, 4), (set(), 4)])
def test_lane_groups_are_one_simd_register_of_the_cpu(monkeypatch, flags, lanes):
    from eoreps import precision

    monkeypatch.delenv(native.LANES_ENV, raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert native.native_lanes() == lanes
    monkeypatch.setenv(native.LANES_ENV, "16")
    assert native.native_lanes() == 16
    monkeypatch.setenv(native.LANES_ENV, "12")
    with pytest.raises(ConfigError, match="EOREPS_ZOO_LANES=12: give 4, 8 or 16"):
        native.native_lanes()


def test_a_bad_lane_setting_does_not_break_the_import_but_refuses_the_native_engine(monkeypatch):
    monkeypatch.setenv(native.LANES_ENV, "12")
    lanes, error = native._lanes_at_import()
    assert lanes in (4, 8, 16) and "EOREPS_ZOO_LANES=12: give 4, 8 or 16" in error
    monkeypatch.setattr(native, "_LANES_ERROR", error)
    with pytest.raises(native.NativeUnavailable, match="EOREPS_ZOO_LANES=12"):
        native.load(make_arch("mlp"))
    with pytest.raises(ConfigError, match="engine=native cannot run here: EOREPS_ZOO_LANES=12"):
        resolve_options(TrainOptions(engine="native"), make_arch("mlp"))
    assert resolve_options(TrainOptions(), make_arch("mlp")).engine == "torch"  # auto falls back


@needs_native
def test_a_member_trains_alike_in_lane_groups_of_any_width(monkeypatch):
    """The same members (mixed activations, optimizers, dropout; 19 = groups plus padding at every width)
    in lane groups of 4, 8 and 16, each width its own compiled kernel: bit for bit the same weights and
    evaluation when multiply-adds are not fused (where the compiler fuses them depends on the width: the
    default flags differ by rounding, see test_every_architecture_native_equals_torch_engine)."""
    monkeypatch.setattr(native, "_FLAGS", [f.replace("-ffp-contract=fast", "-ffp-contract=off")
                                           for f in native._FLAGS])
    data = _rand_data((3, 32, 32), n=40)
    arch = make_arch("cnn_s_rgb", (3, 32, 32), 10)  # multi-channel convolutions
    acts = list(ACTIVATIONS)
    members = [Member(i, 50 + i, acts[i % 4], "kaiming_uniform", ["adam", "sgd"][i % 2], [3e-3, 0.05][i % 2],
                      1e-4 * (i % 3), [0.0, 0.3][i % 2], 1.0) for i in range(19)]
    members.sort(key=lambda m: m.activation)
    runs, keys = {}, set()
    for lanes in (4, 8, 16):
        monkeypatch.setattr(native, "LANES", lanes)
        keys.add(native.kernel_key(arch))
        pop = PopulationTrainer(arch, members, data, TrainOptions(precision="fp32", engine="native"),
                                chunk_seed=2)
        assert pop.opt.engine == "native"
        for _ in range(2):
            pop.train_epoch()
        runs[lanes] = (pop.member_weights(), pop.evaluate()["test_loss"])
    assert len(keys) == 3  # three kernels, not one cached under the same key
    moved = (runs[4][0] - PopulationTrainer(arch, members, data, TrainOptions(
        precision="fp32", engine="torch"), chunk_seed=2).member_weights()).abs().max().item()
    assert moved > 1e-3  # trained
    for lanes in (8, 16):
        assert torch.equal(runs[lanes][0], runs[4][0]), lanes
        assert np.array_equal(runs[lanes][1], runs[4][1]), lanes


def _rand_data(shape, k=10, n=40, seed=0) -> ZooData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return ZooData("rand", x, y, x[:10], y[:10], x[:10], y[:10], k)


@needs_native
@pytest.mark.parametrize("arch_name,shape,k", [("cnn_s", (1, 28, 28), 10), ("cnn_s_rgb", (3, 32, 32), 10),
                                               ("cnn_digits", (1, 8, 8), 10), ("mlp", (1, 8, 8), 10),
                                               ("cnn_ms", (12, 32, 32), 8)])
def test_every_architecture_native_equals_torch_engine(arch_name, shape, k):
    data = _rand_data(shape, k)
    arch = make_arch(arch_name, shape, k)
    acts = list(ACTIVATIONS)
    members = [Member(i, 30 + i, acts[i % 4], "kaiming_uniform", ["adam", "sgd"][i % 2], [3e-3, 0.05][i % 2],
                      1e-4 * (i % 3), 0.0, 1.0) for i in range(18)]  # 18: a full lane group and a padded one
    members.sort(key=lambda m: m.activation)
    got, want = [
        PopulationTrainer(arch, members, data, TrainOptions(precision="fp32", engine=e), chunk_seed=1)
        for e in ("native", "torch")
    ]
    for t in (got, want):
        t.train_epoch()
        t.train_epoch()
    moved = (want.member_weights() - PopulationTrainer(arch, members, data, TrainOptions(
        precision="fp32", engine="torch")).member_weights()).abs().max().item()
    assert moved > 1e-3
    assert (got.member_weights() - want.member_weights()).abs().max().item() < 2e-4
    assert got.optim.step_count == want.optim.step_count == 8
    # rounding: where the compiler fuses multiply-adds depends on the SIMD width; measured max differences
    # 7.6e-6 with 16 lanes, 7.8e-5 with 8 (cnn_s_rgb, AMD EPYC AVX2); bit-identical across widths unfused
    assert torch.allclose(got.optim.exp_avg, want.optim.exp_avg, atol=1e-5 if native.LANES == 16 else 2e-4)


@needs_native
def test_native_dropout_trains_deterministically_and_shared_order_runs(small_digits):
    arch = make_arch("cnn_digits", small_digits.in_shape, small_digits.num_classes)
    members = [Member(i, i, "relu", "kaiming_uniform", "adam", 1e-2, 1e-4, d, 1.0)
               for i, d in enumerate([0.0, 0.5, 0.0, 0.5])]
    runs = []
    for order in ("per_model", "shared", "per_model"):
        pop = PopulationTrainer(arch, members, small_digits, TrainOptions(engine="native", data_order=order))
        before = pop.evaluate()
        for _ in range(3):
            pop.train_epoch()
        after = pop.evaluate()
        assert (after["train_loss"] < before["train_loss"]).all()
        assert after["test_acc"][[0, 2]].min() > 0.5
        runs.append(pop.member_weights())
    assert torch.equal(runs[0], runs[2])  # same seeds, same masks, same weights
    assert not torch.equal(runs[0], runs[1])  # another data order


def test_unsupported_architecture_and_missing_compiler_fall_back(monkeypatch, tmp_path):
    pool_first = Arch("odd", (1, 8, 8), 10, (Op("pool", k=2), Op("flatten"), Op("linear", "fc", 16, 10)))
    with pytest.raises(native.Unsupported):
        native.generate_source(pool_first)
    with pytest.raises(native.NativeUnavailable, match="not supported"):
        native.load(pool_first)
    assert resolve_options(TrainOptions(), pool_first).engine == "torch"
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path))
    arch = make_arch("mlp")
    with pytest.raises(
        native.NativeUnavailable, match="CXX=.*no-such-compiler is not an executable compiler"
    ):
        native.load(arch)
    auto = resolve_options(TrainOptions(), arch)
    assert (auto.engine, auto.precision) == ("torch", "bf16")
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler on PATH at all
    with pytest.raises(native.NativeUnavailable, match="no C.. compiler found"):
        native.load(arch)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(ConfigError, match="engine=native cannot run here: CXX="):
        resolve_options(TrainOptions(engine="native"), arch)


def test_engine_and_precision_options_are_checked():
    arch = make_arch("mlp")
    with pytest.raises(ConfigError, match="engine='fast'"):
        resolve_options(TrainOptions(engine="fast"), arch)
    with pytest.raises(ConfigError, match="precision='fp16'"):
        resolve_options(TrainOptions(precision="fp16"), arch)
    torch_bf16 = resolve_options(TrainOptions(precision="bf16", engine="torch"), arch)
    assert (torch_bf16.engine, torch_bf16.precision) == ("torch", "bf16")
    if native.available():
        nat = resolve_options(TrainOptions(), arch)
        assert (nat.engine, nat.precision) == ("native", "fp32")


@needs_native
def test_compiled_kernel_is_cached_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path))
    arch = make_arch("cnn_digits", (1, 8, 8), 7)  # a shape no other test compiled in this process
    native.load(arch)
    libs = list((tmp_path / "kernels").glob("popnet_*.so"))
    assert len(libs) == 1
    native._LOADED.clear()
    native.load(arch)  # loads the cached library, no second compilation
    assert list((tmp_path / "kernels").glob("popnet_*.so")) == libs
    assert not [p for p in (tmp_path / "kernels").iterdir() if p.is_dir()]  # no temporary build dirs left
    # a cache entry that does not load (damaged) is rebuilt instead of disabling the engine
    native._LOADED.clear()
    real_cdll, compiled, calls = native.ctypes.CDLL, [], []

    def cdll(path):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(f"{path}: invalid ELF header")
        return real_cdll(path)

    real_compile = native._compile
    monkeypatch.setattr(native.ctypes, "CDLL", cdll)
    monkeypatch.setattr(native, "_compile", lambda *a: (compiled.append(a[2]), real_compile(*a)))
    lib = native.load(arch)
    assert lib.popnet_params() == arch.num_params
    assert calls == [str(libs[0])] * 2 and compiled == [libs[0]]


@needs_native
def test_native_evaluation_equals_torch_evaluation_including_diverged_members():
    data = _rand_data((1, 28, 28), n=20)
    g = torch.Generator().manual_seed(3)
    x_eval, y_eval = torch.randn(300, 1, 28, 28, generator=g), torch.randint(0, 10, (300,), generator=g)
    arch = make_arch("cnn_s", (1, 28, 28), 10)
    acts = list(ACTIVATIONS)
    members = sorted(
        [Member(i, i, acts[i % 4], "kaiming_uniform", "adam", 1e-2, 0.0, 0.0, 1.0) for i in range(20)],
        key=lambda m: m.activation,
    )
    nat = PopulationTrainer(arch, members, data, TrainOptions(engine="native"))
    nat.train_epoch()
    w = nat.member_weights()
    diverged = [0, 5, 10, 15]  # one member of each activation (sorted: gelu, relu, sigmoid, tanh)
    w[diverged, 5] = float("nan")  # a NaN in the first layer: its loss is NaN on both engines
    w[1, -1] = -float("inf")  # class 9's bias: probability 0 (finite loss, +inf on class-9 images)
    w[2, -2] = -float("inf")
    w[6, -3] = float("inf")  # class 7 always wins: torch's log-softmax is NaN
    nat.stack.set_members(w)
    ref = PopulationTrainer(arch, members, data, TrainOptions(engine="torch", precision="fp32"))
    ref.stack.set_members(w)
    (nl, na), (tl, ta) = nat._eval_split(x_eval, y_eval), ref._eval_split(x_eval, y_eval)
    ok = ~np.isin(np.arange(20), diverged + [1, 2, 6])
    assert np.isnan(nl[diverged + [6]]).all() and np.isnan(tl[diverged + [6]]).all()
    assert np.isposinf(nl[[1, 2]]).all() and np.isposinf(tl[[1, 2]]).all()  # images of class 9 / 8 exist
    keep = y_eval != 9
    (n9, _), (t9, _) = (
        nat._eval_split(x_eval[keep], y_eval[keep]),
        ref._eval_split(x_eval[keep], y_eval[keep]),
    )
    assert np.isfinite(n9[1]) and abs(n9[1] - t9[1]) < 1e-5  # without class-9 images: a finite loss
    assert np.abs(nl[ok] - tl[ok]).max() < 1e-5
    assert np.array_equal(na, ta)
    assert na[ok].std() > 0  # members differ: the comparison is not between identical numbers


@needs_native
def test_bad_inputs_never_reach_the_kernel():
    arch = make_arch("mlp")
    members = [Member(i, i, "relu", "normal", "sgd", 0.1, 0.0, 0.0, 1.0) for i in range(3)]
    data = _rand_data((1, 8, 8))
    pop = PopulationTrainer(arch, members, data, TrainOptions(engine="native"))
    ng, w = pop._native, pop._native.to_lanes(pop.member_weights())
    x, y = pop._x_native, pop._y_native
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        ng.evaluate(x, torch.full_like(y, 10), w)
    with pytest.raises(ValueError, match="64 values per image"):
        ng.evaluate(torch.zeros(len(x), 65), y, w)
    with pytest.raises(ValueError, match="float32"):
        ng.evaluate(x.double(), y, w)
    with pytest.raises(ValueError, match="outside the 40 images"):
        ng.train_epoch(
            x, y, np.full((3, 5), 40, dtype=np.int32), 10, w, None, None, 0, np.zeros(3, np.uint32)
        )


@needs_native
def test_batch_size_and_lane_buffers_are_checked():
    arch = make_arch("mlp")
    members = [Member(i, i, "relu", "normal", "sgd", 0.1, 0.0, 0.0, 1.0) for i in range(3)]
    data = _rand_data((1, 8, 8))
    for engine in ("native", "torch"):
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            PopulationTrainer(
                arch, members, data, TrainOptions(engine=engine, precision="fp32", batch_size=0)
            )
    pop = PopulationTrainer(arch, members, data, TrainOptions(engine="native"))
    ng, w = pop._native, pop._native.to_lanes(pop.member_weights())
    orders = np.zeros((3, 5), dtype=np.int32)
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        ng.train_epoch(pop._x_native, pop._y_native, orders, 0, w, None, None, 0, np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match=rf"lane buffers must be CPU float32 \(1, 2410, {native.LANES}\)"):
        ng.evaluate(pop._x_native, pop._y_native, w[:, :-1].contiguous())
    with pytest.raises(ValueError, match="both Adam moments or neither"):
        ng.train_epoch(
            pop._x_native, pop._y_native, orders, 10, w, w.clone(), None, 0, np.zeros(3, np.uint32)
        )
    with pytest.raises(ValueError, match="CPU tensors"):
        ng.evaluate(pop._x_native.to("meta"), pop._y_native, w)


@needs_native
@pytest.mark.parametrize("ops", [
    (Op("act"), Op("flatten"), Op("linear", "fc", 64, 10)),
    (Op("flatten"), Op("act"), Op("linear", "fc1", 64, 12), Op("act"), Op("linear", "fc2", 12, 10)),
    (Op("conv", "c", 1, 3, 3), Op("pool", k=2), Op("flatten"), Op("linear", "fc", 27, 10), Op("act"),
     Op("linear", "out", 10, 10)),
])
def test_unusual_layer_orders_train_like_torch(ops):
    """An activation straight on the input, a conv+pool without activation, a linear right after a linear."""
    arch = Arch("odd", (1, 8, 8), 10, ops)
    data = _rand_data((1, 8, 8), n=25)  # 25 images, batch 10: a partial last batch
    members = [Member(i, i, "tanh", "normal", ["adam", "sgd"][i % 2], 0.05, 1e-3, 0.0, 1.0) for i in range(5)]
    got, want = [PopulationTrainer(arch, members, data, TrainOptions(precision="fp32", engine=e)) for e in
                 ("native", "torch")]
    w0 = want.member_weights()
    for t in (got, want):
        t.train_epoch()
        t.train_epoch()
    assert (want.member_weights() - w0).abs().max() > 1e-3
    assert (got.member_weights() - want.member_weights()).abs().max() < 2e-5


def test_an_unusable_cache_or_a_failed_compile_falls_back_with_the_reason(monkeypatch, tmp_path):
    arch = make_arch("cnn_digits", (1, 8, 8), 5)  # not compiled elsewhere in this process
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("EOREPS_CACHE", str(not_a_dir))
    if native.compiler() is not None:
        assert not native.available(arch)
        assert resolve_options(TrainOptions(), arch).engine == "torch"
        with pytest.raises(ConfigError, match="cannot build or load"):
            resolve_options(TrainOptions(engine="native"), arch)
        monkeypatch.setenv("EOREPS_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(native, "generate_source", lambda a, precision="fp32": "int broken = ;\n")
        with pytest.raises(native.NativeUnavailable, match="could not compile the kernel: .*error"):
            native.load(arch)
