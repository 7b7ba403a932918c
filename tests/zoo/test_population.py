"""The vectorized population against the same members trained alone with nn.Module + torch.optim."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from eoreps.zoo import native
from eoreps.zoo.architectures import flatten_state, make_arch
from eoreps.zoo.grid import Member
from eoreps.zoo.modelzoo import METRIC_COLUMNS
from eoreps.zoo.population import PopulationTrainer, TrainOptions, chunk_members, train_alone

# Stated tolerance: after 2 epochs (40 steps of batch 10) in float32, every weight of every member of the
# vectorized chunk is within 2e-4 (absolute) of the member trained alone, on both engines. Differences come
# only from float summation order (grouped vs single convolution, lane-wise kernels, fused optimizer
# arithmetic) and, on the native engine, from its exp/erf approximations (within ~1e-7).
ATOL = 2e-4


ENGINES = [
    "torch",
    pytest.param("native", marks=pytest.mark.skipif(not native.available(), reason="no C++ compiler")),
]


def _opts(engine: str, **kw) -> TrainOptions:
    return TrainOptions(precision="fp32", engine=engine, **kw)


def _members(activation: str, optimizer: str) -> list[Member]:
    lrs = [0.05, 0.01, 0.1] if optimizer == "sgd" else [3e-3, 1e-3, 1e-2]
    return [
        Member(0, 11, activation, "kaiming_uniform", optimizer, lrs[0], 0.0, 0.0, 1.0),
        Member(1, 12, activation, "normal", optimizer, lrs[1], 1e-3, 0.0, 1.0),
        Member(2, 13, activation, "uniform", optimizer, lrs[2], 1e-4, 0.0, 1.0),
        Member(3, 14, activation, "kaiming_normal", optimizer, lrs[1], 1e-2, 0.0, 1.0),
    ]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("arch_name,activation,optimizer", [
    ("cnn_digits", "tanh", "adam"), ("cnn_digits", "relu", "sgd"), ("mlp", "gelu", "adam"),
    ("cnn_digits", "sigmoid", "sgd")])
def test_vectorized_equals_alone(small_digits, arch_name, activation, optimizer, engine):
    arch = make_arch(arch_name, small_digits.in_shape, small_digits.num_classes)
    members = _members(activation, optimizer)
    pop = PopulationTrainer(arch, members, small_digits, _opts(engine), chunk_seed=0)
    assert pop.opt.engine == engine
    pop.train_epoch()
    pop.train_epoch()
    got = pop.member_weights()
    want = torch.stack([flatten_state(train_alone(arch, m, small_digits, epochs=2)) for m in members])
    assert (got - want).abs().max().item() < ATOL
    # and training did move the weights (the comparison is not trivially between initial states)
    init = torch.stack([flatten_state(train_alone(arch, m, small_digits, epochs=0)) for m in members])
    assert (want - init).abs().max().item() > 1e-2


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("arch_name", ["cnn_digits", "mlp"])
def test_mixed_activations_and_optimizers_in_one_chunk_equal_alone(small_digits, arch_name, engine):
    """One chunk of four activations x two optimizer rules: every member as if trained alone."""
    arch = make_arch(arch_name, small_digits.in_shape, small_digits.num_classes)
    members = [
        Member(i, 20 + i, act, "kaiming_uniform", opt, 3e-3 if opt == "adam" else 0.05, 1e-4, 0.0, 1.0)
        for i, (act, opt) in enumerate(
            (a, o) for a in ("relu", "tanh", "gelu", "sigmoid") for o in ("adam", "sgd")
        )
    ]
    chunk = chunk_members(members, 64)
    assert len(chunk) == 1  # one chunk for the whole mix
    members = chunk[0]
    pop = PopulationTrainer(arch, members, small_digits, _opts(engine), chunk_seed=0)
    assert pop.optim.kind == "mixed" and isinstance(pop.activation, list)
    pop.train_epoch()
    pop.train_epoch()
    want = torch.stack([flatten_state(train_alone(arch, m, small_digits, epochs=2)) for m in members])
    assert (pop.member_weights() - want).abs().max().item() < ATOL
    # evaluation of the mixed chunk matches each member evaluated alone
    _, acc = pop._eval_split(small_digits.x_test, small_digits.y_test)
    for i, m in enumerate(members):
        solo = PopulationTrainer(arch, [m], small_digits, TrainOptions(precision="fp32"))
        solo.stack.set_members(pop.member_weights()[i:i + 1])
        assert abs(solo._eval_split(small_digits.x_test, small_digits.y_test)[1][0] - acc[i]) < 1e-6


@pytest.mark.parametrize("engine", ENGINES)
def test_published_cnn_vectorized_equals_alone_on_28x28(engine):
    from eoreps.zoo.datasets import ZooData

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (60,), generator=g)
    data = ZooData("rand28", x, y, x[:20], y[:20], x[:20], y[:20], 10)
    arch = make_arch("cnn_s", (1, 28, 28), 10)
    members = _members("relu", "adam") + _members("gelu", "sgd")  # 8 members: padded lanes on native
    members = [dataclasses.replace(m, model_id=i) for i, m in enumerate(members)]
    pop = PopulationTrainer(arch, members, data, _opts(engine))
    pop.train_epoch()
    want = torch.stack([flatten_state(train_alone(arch, m, data, epochs=1)) for m in members])
    assert (pop.member_weights() - want).abs().max().item() < ATOL


def test_bf16_and_shared_order_train_and_evaluate(small_digits):
    arch = make_arch("cnn_digits", small_digits.in_shape, small_digits.num_classes)
    members = [Member(i, i, "relu", "kaiming_uniform", "adam", 1e-2, 1e-4, d, 1.0)
               for i, d in enumerate([0.0, 0.5, 0.0, 0.5])]
    for order in ("per_model", "shared"):
        pop = PopulationTrainer(arch, members, small_digits, TrainOptions(precision="bf16", data_order=order,
                                                                          engine="torch"))
        before = pop.evaluate()
        for _ in range(3):
            pop.train_epoch()
        after = pop.evaluate()
        assert set(after) == set(METRIC_COLUMNS)
        assert (after["train_loss"] < before["train_loss"]).all()
        assert after["test_acc"][[0, 2]].min() > 0.5  # members without dropout learn the digits
        # members with dropout 0.5 after every layer learn far slower on 200 images: only their
        # loss is checked


@pytest.mark.parametrize("engine", ENGINES)
def test_resume_state_continues_identically(small_digits, engine):
    arch = make_arch("cnn_digits", small_digits.in_shape, small_digits.num_classes)
    members = [
        dataclasses.replace(m, dropout=d)
        for m, d in zip(_members("tanh", "adam"), [0.0, 0.3, 0.0, 0.5], strict=True)
    ]
    a = PopulationTrainer(arch, members, small_digits, _opts(engine))
    a.train_epoch()
    state = {k: v.clone() for k, v in a.state_dict().items()}
    a.train_epoch()
    b = PopulationTrainer(arch, members, small_digits, _opts(engine))
    b.load_state_dict(state)
    b.train_epoch()
    assert torch.equal(a.member_weights(), b.member_weights())


def test_chunking_groups_by_structure_and_balances_sizes():
    ms = [Member(i, i, ["relu", "tanh"][i % 2], "normal", "sgd", 0.01, 0.0, 0.0, [1.0, 0.5][i // 5])
          for i in range(10)]
    chunks = chunk_members(ms, 3)
    assert sorted(m.model_id for c in chunks for m in c) == list(range(10))
    assert all(len({m.train_fraction for m in c}) == 1 for c in chunks)  # one number of steps per epoch
    assert max(len(c) for c in chunks) <= 3
    whole = chunk_members(ms, 64)
    assert len(whole) == 2
    for c in whole:  # each activation is one contiguous slice of its chunk
        acts = [m.activation for m in c]
        assert acts == sorted(acts)
    with pytest.raises(ValueError, match="train_fraction"):
        PopulationTrainer(make_arch("mlp"), [ms[0], ms[9]], None)  # type: ignore[arg-type]
