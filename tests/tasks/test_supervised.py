"""The supervised LightningModule on a tiny fake dataset: every task kind, multi-task, bf16 on CPU."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from eoreps.data.datasets.base import EODataset
from eoreps.data.stats import BandStats
from eoreps.models.fusion import input_specs
from eoreps.tasks.data import EODataModule
from eoreps.tasks.spec import TaskSpec
from eoreps.tasks.supervised import SupervisedModule, evaluate


class Fake(EODataset):
    """Learnable toy data: the class is encoded in the S2 mean, the target in the S1 mean."""

    modalities = ("s2", "s1", "season")
    classes = ("a", "b", "c")
    task = "single"

    def __init__(self, n: int = 48, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.label = torch.randint(0, 3, (n,), generator=g)
        self.s2 = torch.randn(n, 12, 16, 16, generator=g) + self.label[:, None, None, None].float()
        self.target = torch.randn(n, generator=g) * 5 + 20
        self.s1 = torch.randn(n, 2, 16, 16, generator=g) + (self.target[:, None, None, None] - 20) / 5
        self.season = torch.randn(n, 2, generator=g)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int):
        mask = torch.full((16, 16), int(self.label[i]))
        mask[:2] = -100
        return {"s2": self.s2[i], "s1": self.s1[i], "season": self.season[i], "label": self.label[i],
                "multilabel": torch.nn.functional.one_hot(self.label[i], 3).float(), "mask": mask,
                "target": self.target[i], "id": f"f{i}"}


STATS = BandStats(mean={"s2": (0.0,) * 12, "s1": (0.0, 0.0), "season": (0.0, 0.0)},
                  std={"s2": (1.0,) * 12, "s1": (1.0, 1.0), "season": (1.0, 1.0)})


def _dm(mods=("s2", "s1", "season")) -> EODataModule:
    return EODataModule(
        Fake(48, 0), Fake(16, 1), list(mods), evals={"test": Fake(16, 2)}, batch_size=16, stats=STATS
    )


def _trainer(**kw) -> L.Trainer:
    return L.Trainer(
        max_epochs=kw.pop("epochs", 2),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        **kw,
    )


TASKS = {
    "classify": TaskSpec("classify", num_classes=3),
    "multilabel": TaskSpec("multilabel", num_classes=3),
    "segment": TaskSpec("segment", num_classes=3),
    "regress": TaskSpec("regress", target_mean=20.0, target_std=5.0, heteroscedastic=True),
}
EXPECTED = {"classify": {"acc", "f1"}, "multilabel": {"f1_macro", "f1_micro", "map"},
            "segment": {"miou", "pixel_acc"}, "regress": {"mae", "mse", "rmse", "r2", "mape"}}


@pytest.mark.parametrize("kind", list(TASKS))
def test_each_task_trains(kind: str) -> None:
    torch.manual_seed(0)
    dm = _dm()
    module = SupervisedModule([TASKS[kind]], input_specs(dm.example(), dm.modalities), backbone="cnn-tiny",
                              fusion="late", grid_size=(16, 16), dropout=0.1)
    trainer = _trainer()
    trainer.fit(module, datamodule=dm)
    logged = trainer.callback_metrics
    assert "val/loss" in logged and f"val/{kind}/{sorted(EXPECTED[kind])[0]}" in logged
    metrics = evaluate(module, dm.eval_dataloader("test"))
    assert metrics["n"] == 16
    assert {k.split("/")[1] for k in metrics if "/" in k} == EXPECTED[kind]


@pytest.mark.parametrize("head_pooling", ["avg", "attention"])
def test_classification_learns_the_signal(head_pooling: str) -> None:
    torch.manual_seed(0)
    dm = _dm(("s2",))
    module = SupervisedModule([TASKS["classify"]], input_specs(dm.example(), ["s2"]), backbone="cnn-tiny",
                              grid_size=(16, 16), lr=5e-3, head_pooling=head_pooling)
    _trainer(epochs=6).fit(module, datamodule=dm)
    assert evaluate(module, dm.eval_dataloader("test"))["classify/acc"] > 0.6
    if head_pooling == "attention":  # the scorer left its zero (= average pooling) initialisation
        assert module.model.pools["classify"].score.weight.abs().max() > 0


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty", "dwa", "gradnorm"])
def test_multitask_weightings_log_weights(weighting: str) -> None:
    torch.manual_seed(0)
    dm = _dm()
    tasks = [TaskSpec("segment", name="seg", num_classes=3, positive_class=1),
             TaskSpec("regress", name="reg", target_mean=20.0, target_std=5.0),
             TaskSpec("classify", name="cls", num_classes=3)]
    module = SupervisedModule(
        tasks,
        input_specs(dm.example(), dm.modalities),
        backbone="cnn-tiny",
        fusion="early",
        grid_size=(16, 16),
        weighting=weighting,
    )
    trainer = _trainer(epochs=3)
    trainer.fit(module, datamodule=dm)
    logged = trainer.callback_metrics
    for t in ("seg", "reg", "cls"):
        assert f"weight/{t}" in logged and f"train/{t}_loss" in logged
    assert "val/seg/iou" in logged and "val/reg/r2" in logged and "val/cls/acc" in logged
    if weighting == "gradnorm":
        assert float(sum(logged[f"weight/{t}"] for t in ("seg", "reg", "cls"))) == pytest.approx(
            3.0, rel=1e-3
        )
    if weighting == "dwa":
        assert len(module.weighting.history) == 3


def test_bf16_mixed_runs_on_cpu() -> None:
    torch.manual_seed(0)
    dm = _dm(("s2",))
    module = SupervisedModule([TASKS["classify"]], input_specs(dm.example(), ["s2"]), backbone="cnn-tiny",
                              grid_size=(16, 16), channels_last=True)
    trainer = _trainer(epochs=1, precision="bf16-mixed")
    trainer.fit(module, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


def test_gradnorm_shared_layer_is_the_last_conv_of_the_backbone() -> None:
    from eoreps.models.fusion import EarlyFusion, InputSpec
    from eoreps.tasks.multitask import last_shared_weight

    enc = EarlyFusion([InputSpec("s2", 12)], "cnn-tiny", (16, 16))
    (w,) = last_shared_weight(enc)
    assert w is enc.backbone.stages[-1][-1].conv2.weight
