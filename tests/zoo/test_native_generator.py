"""The native engine's generator: one shape pass, one per-op table, fixed C++ in headers, the ABI check."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from eoreps.errors import ConfigError
from eoreps.zoo import architectures, native
from eoreps.zoo.architectures import ARCH_NAMES, Arch, Op, ShapeError, layer_shapes, make_arch
from eoreps.zoo.population import TrainOptions, resolve_options

needs_native = pytest.mark.skipif(not native.available(), reason="no C++ compiler")


def test_shape_pass_gives_every_layer_its_shapes_and_refuses_misfits():
    layers = make_arch("cnn_s").layers()
    assert [(lay.op.kind, lay.out_shape) for lay in layers] == [
        ("conv", (8, 24, 24)), ("pool", (8, 12, 12)), ("act", (8, 12, 12)), ("conv", (6, 8, 8)),
        ("pool", (6, 4, 4)), ("act", (6, 4, 4)), ("conv", (4, 3, 3)), ("act", (4, 3, 3)), ("flatten", (36,)),
        ("linear", (20,)), ("act", (20,)), ("linear", (10,))]
    assert all(a.out_shape == b.in_shape for a, b in zip(layers, layers[1:], strict=False))
    assert make_arch("cnn_s").max_activation() == 8 * 24 * 24
    with pytest.raises(ShapeError, match=r"conv c on shape \(1, 8, 8\)"):
        layer_shapes((1, 8, 8), [Op("conv", "c", 2, 3, 3)])
    with pytest.raises(ShapeError, match=r"linear fc on shape \(64,\)"):
        layer_shapes((1, 8, 8), [Op("flatten"), Op("linear", "fc", 63, 10)])
    with pytest.raises(ShapeError, match="unknown op kind 'upsample'"):
        layer_shapes((1, 8, 8), [Op("upsample")])
    with pytest.raises(ConfigError, match="feature map vanishes after conv2"):
        make_arch("cnn_s", (1, 12, 12))


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_generated_layer_shapes_come_from_the_shape_pass(name):
    arch = make_arch(name)
    src = native.generate_source(arch)
    convs = [lay for lay in arch.layers() if lay.op.kind == "conv"]
    for lay in convs:
        (cin, h, w), op = lay.in_shape, lay.op
        assert re.search(rf"conv(_pool)?_fwd<{cin}, {op.cout}, {h}, {w}, {op.k}>", src)
    assert len(re.findall(r"conv(_pool)?_fwd<", src)) == len(convs)
    assert f"constexpr int INPUTS = {arch.in_shape[0] * arch.in_shape[1] * arch.in_shape[2]};" in src
    assert f"constexpr int D = {arch.num_params};" in src
    # only the per-architecture part is generated: the entry points live in kernels/popnet_abi.hpp
    assert 'extern "C"' not in src and src.rstrip().endswith('#include "popnet_abi.hpp"')


def test_every_op_kind_has_an_emitter_or_is_fused():
    assert set(native.EMITTERS) | {"pool"} == set(architectures.SHAPE_RULES)
    conv = native.EMITTERS["conv"]
    assert conv.fuses(Op("pool", k=2)) and not conv.fuses(Op("pool", k=3))


def test_a_new_op_kind_is_one_shape_rule_and_one_emitter(monkeypatch):
    """Toy registration: an op kind that changes nothing generates exactly the kernel without it."""

    class Nothing(native.OpEmitter):
        def emit(self, prog, layer, fused):
            assert layer.in_shape == layer.out_shape == (64,)

    monkeypatch.setitem(architectures.SHAPE_RULES, "identity", lambda op, s: s)
    monkeypatch.setitem(native.EMITTERS, "identity", Nothing())
    plain = (Op("flatten"), Op("linear", "fc1", 64, 12), Op("act"), Op("linear", "fc2", 12, 10))
    toy = (Op("flatten"), Op("identity"), *plain[1:])
    assert native.generate_source(Arch("toy", (1, 8, 8), 10, toy)) == native.generate_source(
        Arch("toy", (1, 8, 8), 10, plain))
    monkeypatch.delitem(native.EMITTERS, "identity")
    with pytest.raises(native.Unsupported, match="op identity at position 1"):
        native.generate_source(Arch("toy", (1, 8, 8), 10, toy))


@needs_native
def test_kernel_reports_the_abi_that_ctypes_uses():
    lib = native.load(make_arch("mlp"))
    assert lib.popnet_abi().decode() == native.expected_abi()
    head = f"popnet-abi {native.ABI_VERSION}; lanes {native.LANES}; popnet_params: i32()"
    assert native.expected_abi().startswith(head)
    assert lib.popnet_train.argtypes[-1] is native.ctypes.c_int64 and lib.popnet_act.restype is None
    with pytest.raises(native.AbiMismatch, match="native kernel libc exports no popnet_abi"):
        native.check_abi(native.ctypes.CDLL(None), "libc")  # e.g. a library that is no kernel at all


@needs_native
def test_a_drifted_python_signature_is_refused_and_auto_falls_back(monkeypatch):
    arch = make_arch("mlp")
    native.load(arch)  # compiled and on disk: a load below reads it back and checks it
    ret, args = native.ENTRY_POINTS["popnet_train"]
    monkeypatch.setitem(native.ENTRY_POINTS, "popnet_train", (ret, (*args[:-1], "i32")))
    monkeypatch.setattr(native, "_LOADED", {})
    with pytest.raises(native.AbiMismatch) as err:
        native.load(arch)
    msg = str(err.value)
    assert "\n" not in msg and "popnet_train: i32(" in msg and "u32*,i32,i64)' where" in msg
    assert msg.endswith("u32*,i32,i32)'; update ENTRY_POINTS or the header together")
    with pytest.warns(RuntimeWarning, match="ABI mismatch.*using the torch engine"):
        assert resolve_options(TrainOptions(), arch).engine == "torch"
    with pytest.raises(ConfigError, match="engine=native cannot run here: native kernel ABI mismatch"):
        resolve_options(TrainOptions(engine="native"), arch)


@needs_native
def test_a_drifted_header_is_refused_before_any_call(monkeypatch, tmp_path):
    """The kernel's ABI string comes from the C++ function types: edit one in a copy of the headers."""
    kernels = tmp_path / "kernels_src"
    shutil.copytree(native._KERNELS, kernels)
    abi = kernels / "popnet_abi.hpp"
    text = abi.read_text()
    assert text.count("int moments, int64_t step0)") == 1
    abi.write_text(text.replace("int moments, int64_t step0)", "int moments, int step0)"))
    monkeypatch.setattr(native, "_KERNELS", kernels)
    monkeypatch.setattr(native, "_LOADED", {})
    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path / "cache"))
    drift = r"has 'popnet_train: i32\(.*,i32,i32\)' where .*,i32,i64\)'"
    with pytest.raises(native.AbiMismatch, match=drift):
        native.load(make_arch("mlp"))
    # the headers are part of the cache key: the intact headers build (and pass) a kernel of their own
    shutil.copy(Path(native.__file__).parent / "kernels" / "popnet_abi.hpp", abi)
    native.load(make_arch("mlp"))
    assert len(list((tmp_path / "cache" / "kernels").glob("popnet_*.so"))) == 2
