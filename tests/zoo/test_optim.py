"""The stacked per-member optimizers against torch.optim on single models."""

from __future__ import annotations

import pytest
import torch

from eoreps.zoo.architectures import build_model, flatten_state, make_arch
from eoreps.zoo.optim import StackedOptimizer, StackedParams


@pytest.mark.parametrize("kind", ["sgd", "adam", ("adam", "sgd", "adam")])
def test_stacked_update_equals_torch_optim(kind):
    """One rule for all members, or a mixed population (each member its own rule)."""
    arch = make_arch("cnn_digits")
    lrs, wds = [0.05, 0.001, 0.01], [0.0, 1e-3, 1e-2]
    nets = [build_model(arch, "relu", "kaiming_uniform", seed=s) for s in range(3)]
    stack = StackedParams(arch, torch.stack([flatten_state(n) for n in nets]))
    opt = StackedOptimizer(
        stack, kind if isinstance(kind, str) else list(kind), torch.tensor(lrs), torch.tensor(wds)
    )
    kinds = [kind] * 3 if isinstance(kind, str) else list(kind)
    assert opt.kind == ("mixed" if len(set(kinds)) > 1 else kinds[0])
    refs = [(torch.optim.Adam if k == "adam" else torch.optim.SGD)(n.parameters(), lr=lr, weight_decay=wd)
            for n, k, lr, wd in zip(nets, kinds, lrs, wds, strict=True)]
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        grads = torch.randn(3, arch.num_params, generator=g)
        stack.zero_grad()
        o = 0
        for _key, p in stack.params.items():  # write the same gradients through the leaf views
            n = p[0].numel()
            p.grad.copy_(grads[:, o:o + n].view_as(p))
            o += n
        opt.step()
        for i, (net, ref) in enumerate(zip(nets, refs, strict=False)):
            o = 0
            for p in net.parameters():
                p.grad = grads[i, o:o + p.numel()].view_as(p).clone()
                o += p.numel()
            ref.step()
    want = torch.stack([flatten_state(n) for n in nets])
    torch.testing.assert_close(stack.members(), want, rtol=1e-5, atol=1e-6)


def test_autograd_accumulates_into_the_flat_gradient_buffer():
    arch = make_arch("mlp")
    stack = StackedParams(arch, torch.randn(2, arch.num_params))
    ptr = stack.grad.data_ptr()
    loss = sum((p ** 2).sum() for p in stack.params.values())
    loss.backward()
    assert stack.grad.data_ptr() == ptr
    torch.testing.assert_close(stack.grad, 2 * stack.flat)
    for p in stack.params.values():
        assert p.grad.data_ptr() >= ptr and p.grad.data_ptr() < ptr + stack.grad.numel() * 4


def test_optimizer_kind_checks():
    stack = StackedParams(make_arch("mlp"), torch.randn(2, make_arch("mlp").num_params))
    with pytest.raises(ValueError, match="rmsprop"):
        StackedOptimizer(stack, ["sgd", "rmsprop"], torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match="3 optimizer kinds"):
        StackedOptimizer(stack, ["sgd", "adam", "sgd"], torch.ones(2), torch.zeros(2))
