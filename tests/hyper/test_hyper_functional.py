"""The functional reconstruction loss against a literal per-model transcription, and in a fit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.hyper.functional import FunctionalLoss
from eoreps.zoo.architectures import ZooNet, build_model, flatten_state, load_flat, make_arch

ACTS = ["gelu", "relu", "sigmoid", "tanh"]


def _models(arch, n: int, seed: int = 0) -> torch.Tensor:
    return torch.stack(
        [flatten_state(build_model(arch, "relu", "kaiming_uniform", seed + i)) for i in range(n)]
    )


@torch.no_grad()
def _literal_kl(
    arch, decoded: torch.Tensor, original: torch.Tensor, act: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """1/(V P B) sum over views, models and images of sum_k p_k (log p_k - log q_k), one ZooNet at a time."""
    P = original.shape[0]
    total, count = 0.0, 0
    for j in range(decoded.shape[0]):
        p = j % P
        name = ACTS[int(act[p])]
        teacher = load_flat(ZooNet(arch, name), original[p])(x).softmax(-1)
        student = load_flat(ZooNet(arch, name), decoded[j])(x).softmax(-1)
        for b in range(x.shape[0]):
            total += sum(
                float(teacher[b, k]) * (math.log(float(teacher[b, k])) - math.log(float(student[b, k])))
                for k in range(teacher.shape[1])
            )
            count += 1
    return torch.tensor(total / count)


def test_kl_matches_a_literal_transcription_with_mixed_activations():
    arch = make_arch("cnn_digits")
    images = torch.randn(40, *arch.in_shape)
    loss = FunctionalLoss(arch, images, ACTS, batch=6)
    original = _models(arch, 5)
    decoded = original.repeat(2, 1) + 0.3 * torch.randn(10, original.shape[1])  # two views per model
    act = torch.tensor([3, 1, 0, 1, 2])  # unsorted on purpose: logits must come back in model order
    got = loss(decoded, original, act, torch.Generator().manual_seed(5))
    x = loss.draw(torch.Generator().manual_seed(5))  # the images that call drew
    torch.testing.assert_close(got, _literal_kl(arch, decoded, original, act, x), rtol=1e-4, atol=1e-6)


def test_kl_is_zero_for_the_original_and_its_gradient_reaches_the_weights():
    arch = make_arch("cnn_digits")
    loss = FunctionalLoss(arch, torch.randn(16, *arch.in_shape), ACTS, batch=8)
    original = _models(arch, 3, seed=7)
    act = torch.tensor([1, 1, 3])
    assert float(loss(original.clone(), original, act)) == pytest.approx(0.0, abs=1e-6)
    decoded = (original + 0.2 * torch.randn_like(original)).requires_grad_(True)
    value = loss(decoded, original, act)
    value.backward()
    assert float(value) > 0 and decoded.grad is not None and decoded.grad.abs().sum() > 0


def test_bad_arguments():
    arch = make_arch("cnn_digits")
    w = _models(arch, 2)
    loss = FunctionalLoss(arch, torch.randn(4, *arch.in_shape), ACTS)
    with pytest.raises(ValueError, match="needs"):
        loss(w[:, :-1], w[:, :-1], torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="expects"):
        FunctionalLoss(arch, torch.randn(4, 1, 28, 28), ACTS)
    with pytest.raises(ConfigError, match="unknown activation"):
        FunctionalLoss(arch, torch.randn(4, *arch.in_shape), ["relu", "swish"])


def test_fit_with_the_functional_loss_logs_it_and_refuses_to_resume_with_another_weight(tiny_zoo, tmp_path):
    from eoreps.hyper.augment import AugmentConfig
    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.hyper.representation import load_representation
    from eoreps.hyper.train import FitConfig, fit

    tiny = ModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=8)
    out = tmp_path / "rep-functional"
    cfg = dict(zoo=tiny_zoo, out=out, epochs=1, batch_size=8, precision="fp32", model=tiny,
               augment=AugmentConfig(permute=False, align=True), functional_images=16)
    s = fit(FitConfig(**cfg, functional=1.0))
    assert (
        math.isfinite(s["train/functional"])
        and s["train/functional"] > 0
        and math.isfinite(s["val/functional"])
    )
    assert load_representation(out).decode(torch.zeros(1, 8)).shape[1] == make_arch("cnn_digits").num_params
    from eoreps.hyper.sample import SampleConfig, run_sample
    from eoreps.zoo.datasets import ZooData, load_digits

    d = load_digits(0)
    data = ZooData("digits", d.x_train[:100], d.y_train[:100], d.x_val, d.y_val, d.x_test, d.y_test, 10)
    res = run_sample(
        SampleConfig(zoo=tiny_zoo, rep=out, out=tmp_path / "s", n=2, top_k=4, epochs=[0]), data=data
    )
    assert (
        res["note"] is None and res["summary"]["functional"] == 1.0
    )  # aligned and functional: nothing to advise
    with pytest.raises(ConfigError, match="functional"):
        fit(FitConfig(**cfg, functional=0.5))
    with pytest.raises(ConfigError, match="functional=-1 must be >= 0"):  # Python callers read the field name
        FitConfig(**{**cfg, "out": Path(tmp_path / "x")}, functional=-1).validate()
