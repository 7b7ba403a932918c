"""``eoreps.optim.adamw``: PyTorch's fused AdamW where it applies, the same update as the default loop."""

from __future__ import annotations

import copy

import pytest
import torch

from eoreps.optim import adamw, fused_applies


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    # no conv bias before the BatchNorm: its gradient is rounding noise, which Adam would amplify into
    # updates that differ between any two implementations
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 4))


def _train(net: torch.nn.Module, opt: torch.optim.Optimizer, steps: int = 5) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 4, (16,), generator=g)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def test_fused_on_cpu_with_groups_and_the_same_update_as_the_default_loop():
    a, b = _net(), _net()
    groups = [{"params": (p for p in a.parameters() if p.ndim > 1), "weight_decay": 0.05},  # a generator
              {"params": [p for p in a.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
    fused = adamw(groups, lr=1e-2)
    assert fused.defaults["fused"] is True and len(fused.param_groups[0]["params"]) == 2
    plain = torch.optim.AdamW([{"params": [p for p in b.parameters() if p.ndim > 1], "weight_decay": 0.05},
                               {"params": [p for p in b.parameters() if p.ndim <= 1], "weight_decay": 0.0}],
                              lr=1e-2)
    assert not plain.defaults["fused"]  # the default on CPU is the per-tensor loop
    _train(a, fused)
    _train(b, plain)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        moved = [float((p - q).abs().max()) for p, q in zip(a.parameters(), _net().parameters(), strict=True)]
    assert min(moved) > 1e-3  # every tensor moved: the comparison above is of trained weights


def test_falls_back_where_no_fused_kernel_applies_and_passes_explicit_choices_through():
    meta = torch.zeros(3, device="meta", requires_grad=True)  # no fused kernel on the meta device
    assert not fused_applies([meta]) and not fused_applies([])
    assert not adamw([meta], lr=1e-3).defaults["fused"]
    p = torch.zeros(3, requires_grad=True)
    assert fused_applies([p])
    assert adamw([p], lr=1e-3, fused=False).defaults["fused"] is False
    assert adamw([p], lr=1e-3, foreach=True).defaults["foreach"] is True


def test_training_loops_get_the_fused_optimizer():
    """SSL pretraining and supervised fits build their AdamW through :func:`adamw` (fused on CPU)."""
    from eoreps.data.stats import BandStats
    from eoreps.models.fusion import InputSpec
    from eoreps.ssl.methods import get_method
    from eoreps.tasks.spec import TaskSpec
    from eoreps.tasks.supervised import SupervisedModule

    stats = BandStats(mean={"s2": (0.0,) * 4}, std={"s2": (1.0,) * 4})
    ssl = get_method("simclr")(modalities=["s2"], in_chans={"s2": 4}, stats=stats.to_dict(),
                               backbone="cnn-tiny", image_size=(16, 16), max_steps=10)
    sup = SupervisedModule([TaskSpec("classify", num_classes=3)], [InputSpec("s2", 4)],
                           backbone="cnn-tiny", grid_size=(16, 16))
    for module in (ssl, sup):
        opt = module.configure_optimizers()["optimizer"]
        assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True, type(module).__name__


class _Tiny:
    """A LightningModule whose optimizer comes from :func:`adamw`, told (or not) about its trainer."""

    @staticmethod
    def make(tell_trainer: bool):
        import lightning as L

        class Tiny(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = torch.nn.Linear(4, 2)

            def training_step(self, batch, batch_idx):
                return self.net(batch[0]).square().mean()

            def configure_optimizers(self):
                return adamw(self.parameters(), lr=1e-2, trainer=self._trainer if tell_trainer else None)

        return Tiny()


def test_lightning_clipping_under_mixed_precision_gets_the_default_optimizer():
    """Lightning refuses to clip a fused optimizer's gradients under bf16-mixed (it would raise mid-run);
    told the trainer, :func:`adamw` picks the default implementation there and stays fused elsewhere."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from eoreps.optim import clips_under_mixed_precision

    def trainer(precision: str, clip: float | None) -> L.Trainer:
        return L.Trainer(max_steps=2, accelerator="cpu", precision=precision, gradient_clip_val=clip,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)

    loader = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)
    t = trainer("bf16-mixed", 1.0)
    assert clips_under_mixed_precision(t)
    assert not clips_under_mixed_precision(trainer("bf16-mixed", None))
    assert not clips_under_mixed_precision(trainer("32-true", 1.0)) and not clips_under_mixed_precision(None)
    module = _Tiny.make(tell_trainer=True)
    t.fit(module, loader)
    assert t.global_step == 2 and not t.optimizers[0].defaults["fused"]
    with pytest.raises(RuntimeError, match="fused"):  # what adamw avoids: the fused optimizer, clipped
        trainer("bf16-mixed", 1.0).fit(_Tiny.make(tell_trainer=False), loader)
    t32 = trainer("32-true", 1.0)
    t32.fit(_Tiny.make(tell_trainer=True), loader)
    assert t32.optimizers[0].defaults["fused"] is True


def test_a_resumed_state_keeps_the_implementation_chosen_at_construction():
    """load_state_dict would take the saved groups' fused/foreach flags: a checkpoint of the default loop
    resumed into adamw stays fused (and continues as the loop would, up to rounding), and the other way."""
    a, b = _net(), _net()
    loop = torch.optim.AdamW(a.parameters(), lr=1e-2)
    _train(a, loop, steps=3)
    b.load_state_dict(a.state_dict())
    resumed = adamw(b.parameters(), lr=1e-2)
    resumed.load_state_dict(copy.deepcopy(loop.state_dict()))  # as read from a checkpoint: not shared
    assert all(g["fused"] is True and g["foreach"] is None for g in resumed.param_groups)
    assert all(s["step"].dtype == torch.float32 for s in resumed.state.values())
    _train(a, loop, steps=2)
    _train(b, resumed, steps=2)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    plain = adamw(_net().parameters(), lr=1e-2, trainer=None, fused=False)  # explicit: torch's own
    plain.load_state_dict(resumed.state_dict())
    assert plain.param_groups[0]["fused"] is True  # torch's behaviour, which adamw's hook corrects
    back = adamw([p for p in _net().parameters()], lr=1e-2)
    back.defaults["fused"] = False  # as built for a trainer that clips under bf16-mixed
    back.load_state_dict(resumed.state_dict())
    assert all(g["fused"] is False for g in back.param_groups)


def test_a_loaded_step_counter_is_where_the_implementation_wants_it():
    """Steps saved as float64 (torch's default dtype at the time) load as float32, as the optimizer would
    have made them; a fused state loaded into the loop keeps its steps on the CPU."""
    net = _net()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        loop = torch.optim.AdamW([p for p in _net().double().parameters()], lr=1e-2)
        for p in loop.param_groups[0]["params"]:
            p.grad = torch.ones_like(p)
        loop.step()
        saved = copy.deepcopy(loop.state_dict())
    finally:
        torch.set_default_dtype(old)
    assert {s["step"].dtype for s in saved["state"].values()} == {torch.float64}
    fused = adamw(net.parameters(), lr=1e-2)
    fused.load_state_dict(saved)
    assert {s["step"].dtype for s in fused.state.values()} == {torch.float32}
    assert {s["step"].device.type for s in fused.state.values()} == {"cpu"}


def test_a_group_that_names_its_implementation_is_left_to_torch():
    net = _net()
    opt = adamw([{"params": net.parameters(), "foreach": True}], lr=1e-3)
    assert not opt.defaults["fused"] and opt.param_groups[0]["foreach"] is True


def test_named_parameters_and_what_torch_refuses():
    net = _net()
    opt = adamw(net.named_parameters(), lr=1e-3)
    assert opt.defaults["fused"] is True
    assert len(opt.param_groups[0]["params"]) == len(list(net.parameters()))
    with pytest.raises(TypeError):  # a bare tensor: torch's own error
        adamw(torch.zeros(3, requires_grad=True), lr=1e-3)
    assert not adamw(net.parameters(), lr=1e-3, differentiable=True).defaults["fused"]
