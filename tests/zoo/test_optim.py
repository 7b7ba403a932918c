"""The stacked per-member optimizers against torch.optim on single models."""

from __future__ import annotations

import pytest
import torch

from eoreps.zoo.architectures import build_model, flatten_state, make_arch
from eoreps.zoo.optim import StackedOptimizer, StackedParams


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_stacked_update_equals_torch_optim(kind):
    arch = make_arch("cnn_digits")
    lrs, wds = [0.05, 0.001, 0.01], [0.0, 1e-3, 1e-2]
    nets = [build_model(arch, "relu", "kaiming_uniform", seed=s) for s in range(3)]
    stack = StackedParams(arch, torch.stack([flatten_state(n) for n in nets]))
    opt = StackedOptimizer(stack, kind, torch.tensor(lrs), torch.tensor(wds))
    cls = torch.optim.Adam if kind == "adam" else torch.optim.SGD
    refs = [cls(n.parameters(), lr=lr, weight_decay=wd) for n, lr, wd in zip(nets, lrs, wds, strict=False)]
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
