"""Measured ``--precision auto`` (issue 25): on a CPU with the bf16 flags a run times its own model in fp32
and bf16 and keeps bf16 only where it is faster; the verdict is cached and recorded with its ratio."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from eoreps import precision as P
from eoreps import precision_probe as PP


class FakeTimer:
    """``(fp32, bf16)`` seconds per step, counting its calls (no real timing)."""

    def __init__(self, fp32_s: float, bf16_s: float) -> None:
        self.result, self.calls = (fp32_s, bf16_s), 0

    def __call__(self, workload: PP.Workload) -> tuple[float, float]:
        self.calls += 1
        return self.result


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """A user's machine (no suite override) with the given CPU flags; verdicts cached under tmp_path."""
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(PP, "cache_root", lambda: tmp_path / "precision")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def use(flags: set[str]) -> None:
        monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))

    use({"avx512f", "amx_bf16"})
    return use


def _workload(batch: int = 8, backbone: str = "cnn-tiny") -> PP.Workload:
    from eoreps.models import create_backbone

    enc = create_backbone(backbone, in_chans=4)
    return PP.Workload([(enc, torch.randn(batch, 4, 16, 16))], PP.image_label(backbone, 4, (16, 16), batch))


@dataclass
class Cfg:
    precision: str = "auto"


def _settled(accelerator: str = "cpu", timer: FakeTimer | None = None) -> tuple[Cfg, dict[str, str]]:
    cfg = Cfg()
    cfg.precision = P.resolve_config(cfg, ("auto", "fp32", "bf16"), accelerator)
    return cfg, PP.settle(cfg, _workload, accelerator, timer=timer)


@pytest.mark.parametrize("fp32_s, bf16_s, pick",
                         [(1.0, 1.35, "fp32"), (1.0, 0.5, "bf16"), (1.0, 0.97, "fp32")])
def test_the_verdict_follows_the_measured_ratio(cpu, fp32_s, bf16_s, pick):
    """bf16 slower -> fp32; 2x faster -> bf16; 1.03x faster (under the 1.05x margin) -> fp32."""
    timer = FakeTimer(fp32_s, bf16_s)
    cfg, rec = _settled(timer=timer)
    ratio = f"{fp32_s / bf16_s:.3f}x"
    assert timer.calls == 1 and cfg.precision == pick and P.requested(cfg) == "auto"
    assert rec == {"precision": pick, "reason": f"{pick}: bf16 measured {ratio} fp32 for cnn-tiny 4x16x16 b8 "
                                                f"on this CPU (bf16 needs >= 1.05x)"}


def test_a_cached_verdict_skips_timing_and_another_key_measures(cpu, tmp_path):
    slow = FakeTimer(1.0, 2.0)
    assert PP.measured_choice(_workload(), slow).precision == "fp32"
    never = FakeTimer(1.0, 0.1)  # would say bf16 if it were asked
    again = PP.measured_choice(_workload(), never)
    reason = ("fp32: bf16 measured 0.500x fp32 for cnn-tiny 4x16x16 b8 on this CPU "
              "(bf16 needs >= 1.05x; cached)")
    assert never.calls == 0 and again == P.Choice("fp32", reason)
    assert PP.measured_choice(_workload(batch=16), never).precision == "bf16"  # another batch: measured
    assert never.calls == 1
    n = torch.get_num_threads()
    torch.set_num_threads(n + 1)  # the thread count is part of the key too
    try:
        PP.measured_choice(_workload(), never)
    finally:
        torch.set_num_threads(n)
    assert never.calls == 2
    files = sorted((tmp_path / "precision").glob("*.json"))
    assert len(files) == 3
    rec = json.loads(files[0].read_text())
    assert {"key", "ratio", "fp32_s_per_step", "bf16_s_per_step"} <= set(rec)
    assert rec["key"]["cpu"] == P.cpu_model() and rec["key"]["flags"] == ["avx512f", "amx_bf16"]


@pytest.mark.parametrize("content", ["{not json", '{"ratio": "fast"}', '{"key": 1, "ratio": 2.0}', "[]", ""])
def test_a_corrupt_cache_file_is_measured_again(cpu, tmp_path, content):
    timer = FakeTimer(1.0, 0.5)
    PP.measured_choice(_workload(), timer)
    (path,) = (tmp_path / "precision").glob("*.json")
    path.write_text(content)
    assert PP.measured_choice(_workload(), timer).precision == "bf16" and timer.calls == 2
    assert json.loads(path.read_text())["ratio"] == 2.0  # rewritten


def test_the_override_and_a_cpu_without_the_flags_do_not_measure(cpu, monkeypatch):
    never = FakeTimer(1.0, 0.1)
    monkeypatch.setenv(P.ENV, "fp32")
    cfg, rec = _settled(timer=never)
    assert rec == {"precision": "fp32", "reason": f"fp32: {P.ENV}=fp32"} and cfg.precision == "fp32"
    monkeypatch.delenv(P.ENV)
    cpu({"avx2", "avx512f"})
    cfg, rec = _settled(timer=never)
    assert rec == {"precision": "fp32", "reason": "fp32: CPU lacks amx_bf16 and avx512_bf16"}
    assert never.calls == 0
    cpu({"amx_bf16"})
    cfg = Cfg("fp32")  # an explicit choice is not measured either
    cfg.precision = P.resolve_config(cfg, ("auto", "fp32", "bf16"))
    assert PP.settle(cfg, _workload, timer=never) == {
        "precision": "fp32", "reason": "fp32: requested (auto would time bf16 against fp32)"}
    assert never.calls == 0


def test_the_real_timer_leaves_the_run_untouched(cpu):
    """Real steps on private copies: the module's weights and the global random state are unchanged."""
    work = _workload(batch=4)
    enc = work.parts[0][0]
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    torch.manual_seed(3)
    fp32_s, bf16_s = PP.time_workload(work)
    assert fp32_s > 0 and bf16_s > 0
    after = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(3))
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())


def test_pretrain_records_the_measured_choice(cpu, tmp_path, monkeypatch, capsys):
    """``eoreps pretrain --quick`` with auto on an AMX CPU where bf16 times slower: fp32, with the ratio in
    pretrain.json, the encoders' cards and the announcement; SimCLR's step is timed on a raw batch."""
    from eoreps.cli import main

    timer = FakeTimer(1.0, 1.25)
    seen: list[PP.Workload] = []
    monkeypatch.setattr(PP, "time_workload", lambda w: (seen.append(w), timer(w))[1])
    monkeypatch.setattr(P, "_ANNOUNCED", set())
    out = tmp_path / "pre"
    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--quick", "--method", "simclr", "--backbone", "cnn-tiny", "--modalities", "s2",
              "--loader", "memory", "--no-knn", "--out", str(out)])
    assert e.value.code in (0, None)
    reason = ("fp32: bf16 measured 0.800x fp32 for cnn-tiny 12x32x32 b32 simclr on this CPU "
              "(bf16 needs >= 1.05x)")
    rec = json.loads((out / "pretrain.json").read_text())
    assert rec["precision"] == {"precision": "fp32", "reason": reason}
    assert rec["config"]["precision"] == "fp32"
    cards = [json.loads(p.read_text()) for p in out.glob("backbone*.json")]
    assert cards and all(c["precision"]["reason"] == reason for c in cards)
    assert f"precision: fp32 ({reason})" in capsys.readouterr().out
    assert timer.calls == 1 and seen[0].shapes == [{"s2": [32, 12, 32, 32]}]  # a raw batch of the run
    assert seen[0].spec == {"views": [[32, 12, 32, 32], [32, 12, 32, 32]]}  # SimCLR's two views


def test_the_timed_step_has_the_runs_shapes():
    """A fit times the whole model (channels-last when the run converts it) on the run's batch."""
    from eoreps.tasks.spec import TaskSpec
    from eoreps.tasks.supervised import SupervisedModule

    fit = SupervisedModule([TaskSpec(kind="classify", num_classes=3)],
                           [{"name": "s2", "channels": 4}], backbone="cnn-tiny", grid_size=(16, 16),
                           channels_last=True)
    work = fit.precision_workload({"s2": torch.zeros(4, 16, 16)}, 5)
    assert work.channels_last and work.shapes == [{"s2": [5, 4, 16, 16]}]
    assert work.label == "cnn-tiny 4x16x16 b5"
    assert work.parts[0][0] is fit.model


class _Probe(torch.nn.Module):
    """Records which module instance ran and whether its input was NCHW-contiguous."""

    calls: list[tuple[int, bool]] = []

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _Probe.calls.append((id(self), x.is_contiguous()))
        return self.conv(x)


def test_one_copy_times_both_precisions_on_the_inputs_the_run_feeds(monkeypatch):
    """Issue 25 review: a single private copy (one set of weights and AdamW state) serves fp32 and bf16,
    and a channels-last run's NCHW inputs are timed as NCHW (only the model is converted)."""
    monkeypatch.setattr(PP, "MAX_ROUNDS", 2)
    monkeypatch.setattr(_Probe, "calls", [])
    model = _Probe()
    PP.time_workload(PP.Workload([(model, torch.randn(2, 4, 8, 8))], "probe", channels_last=True))
    ids = {i for i, _ in _Probe.calls}
    assert len(_Probe.calls) == 2 + 2 * 2 and len(ids) == 1 and id(model) not in ids
    assert all(nchw for _, nchw in _Probe.calls)


def test_a_ratio_just_under_the_margin_shows_three_decimals(cpu):
    choice = PP.measured_choice(_workload(), FakeTimer(1.046, 1.0))
    assert choice.precision == "fp32" and "measured 1.046x fp32" in choice.reason


def test_a_verdict_keyed_with_tuples_is_found_again(cpu):
    """The key read back from JSON has lists where the run's has tuples: digests compare, not keys."""
    timer = FakeTimer(1.0, 0.5)
    work = PP.Workload([(torch.nn.Linear(2, 2), torch.zeros(1, 2))], "linear", spec={"size": (16, 16)})
    PP.measured_choice(work, timer)
    assert PP.measured_choice(work, timer).reason.endswith("; cached)") and timer.calls == 1


def test_the_key_is_the_step_s_structure_not_its_weights():
    """Same layers, other weights (a seed, a weights file): one key; another dropout rate, width or
    frozen part: another key."""
    def net(p: float = 0.1, hidden: int = 8) -> torch.nn.Module:
        nn = torch.nn
        return nn.Sequential(nn.Linear(4, hidden), nn.Dropout(p), nn.Linear(hidden, 2))

    def key(m: torch.nn.Module) -> dict:
        return PP.cache_key(PP.Workload([(m, torch.zeros(3, 4))], "net"))

    torch.manual_seed(0)
    a = net()
    torch.manual_seed(1)
    assert key(a) == key(net())
    assert key(a) != key(net(p=0.5)) and key(a) != key(net(hidden=16))
    frozen = net()
    frozen[0].requires_grad_(False)
    assert key(a) != key(frozen)


def test_concurrent_runs_time_a_setup_once(cpu, tmp_path):
    """Lookup, timing and write hold the cache file's lock, and the cache is read again once it is held:
    a run that waited for another's timing reuses that verdict."""
    import threading

    from filelock import FileLock

    first = FakeTimer(1.0, 0.5)
    PP.measured_choice(_workload(), first)
    (path,) = (tmp_path / "precision").glob("*.json")
    verdict = path.read_text()
    path.unlink()  # as if another run were timing it right now
    never = FakeTimer(1.0, 2.0)
    got: list[P.Choice] = []
    with FileLock(str(path) + ".lock"):
        waiter = threading.Thread(target=lambda: got.append(PP.measured_choice(_workload(), never)))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # waits for the lock
        path.write_text(verdict)  # the other run's verdict lands
    waiter.join(10)
    assert never.calls == 0 and got[0].precision == "bf16" and got[0].reason.endswith("; cached)")


class _Seen(torch.nn.Module):
    """Records whether it ran in training mode and with gradients enabled."""

    seen: list[tuple[bool, bool]] = []

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _Seen.seen.append((self.training, torch.is_grad_enabled()))
        return self.lin(x)


def test_a_forward_only_workload_times_eval_passes_under_its_own_key(monkeypatch):
    """Issue 25: evaluate's feature pass is timed as it runs (eval mode, no gradients, no optimizer step),
    and its verdict is cached apart from the training step's of the same module."""
    monkeypatch.setattr(PP, "MAX_ROUNDS", 2)
    monkeypatch.setattr(_Seen, "seen", [])
    model = _Seen()
    before = model.lin.weight.clone()
    PP.time_workload(PP.Workload([(model, torch.randn(3, 4))], "seen", forward_only=True))
    assert _Seen.seen == [(False, False)] * (2 + 2 * 2) and model.training
    assert torch.equal(before, model.lin.weight) and model.lin.weight.grad is None
    train = PP.cache_key(PP.Workload([(model, torch.randn(3, 4))], "seen"))
    forward = PP.cache_key(PP.Workload([(model, torch.randn(3, 4))], "seen", forward_only=True))
    assert forward == {**train, "forward_only": True} and "forward_only" not in train  # old keys kept


def test_a_streamed_window_batch_keys_by_its_tensors_shapes():
    """A streamed windowed fit feeds :class:`WindowParts` (a dataclass): its batch and tensor sizes are in
    the key, as a tensor batch's shape is."""
    from eoreps.hyper.window_parts import WindowParts

    def parts(batch: int, numel: int) -> WindowParts:
        return WindowParts(0, 8, (0, 1), (torch.zeros(batch, numel), torch.zeros(batch, 4)))

    assert PP.shapes_of(parts(8, 36)) == {"start": [], "length": [], "tensors": [[], []],
                                          "values": [[8, 36], [8, 4]]}
    m = torch.nn.Linear(4, 2)

    def key(p: WindowParts) -> dict:
        return PP.cache_key(PP.Workload([(m, p)], "hyper window"))

    assert key(parts(8, 36)) == key(parts(8, 36))
    assert key(parts(8, 36)) != key(parts(64, 36)) and key(parts(8, 36)) != key(parts(8, 72))
