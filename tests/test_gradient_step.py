"""training/gradient_step.py: the optimizer calls a gradient step makes, without torch's per-call Python, give
torch's own results bit for bit."""

from __future__ import annotations

import pytest
import torch

from rlship.training.gradient_step import AdamStep, GradientStep, clip_grad_norm
from tests.training_helpers import twin_mlps


@pytest.mark.parametrize("max_norm", [1e-3, 1e3])  # clipped, and left alone
def test_clip_grad_norm_is_torchs(max_norm: float) -> None:
    net, twin = twin_mlps("relu")
    obs = torch.randn(64, 4)
    for module in (net, twin):
        module(obs)["q_values"].square().sum().backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
    clip_grad_norm(list(twin.parameters()), max_norm)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None and torch.equal(a.grad, b.grad)


def test_adam_step_is_torchs_fused_adam_step_bit_for_bit() -> None:
    """The same weights and optimizer state as `optimizer.step()` over steps with a changing learning rate (the
    first step, which creates the state, is torch's own); a non-fused Adam goes through torch's step."""
    net, twin = twin_mlps("relu")
    ours = torch.optim.Adam(twin.parameters(), lr=1e-3, fused=True)
    theirs = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    step = AdamStep(ours)
    assert step.direct and not AdamStep(torch.optim.Adam(net.parameters())).direct
    for i in range(20):
        obs = torch.randn(32, 4)
        for module, optimizer in ((net, theirs), (twin, ours)):
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 / (1 + i)
            module.zero_grad(set_to_none=True)
            module(obs)["q_values"].square().mean().backward()
        theirs.step()
        step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    mine, torchs = ours.state_dict()["state"], theirs.state_dict()["state"]
    assert all(torch.equal(mine[k][name], torchs[k][name]) for k in torchs for name in torchs[k])


def test_a_gradient_step_is_torchs_zero_grad_backward_clip_and_step() -> None:
    """PPO's and DQN's whole step, against the four torch calls it stands for, with a clip that binds."""
    net, twin = twin_mlps("tanh")
    theirs = torch.optim.Adam(net.parameters(), lr=3e-3, eps=1e-5, fused=True)
    step = GradientStep(
        list(twin.parameters()), torch.optim.Adam(twin.parameters(), lr=3e-3, eps=1e-5, fused=True), 0.5
    )
    for _ in range(10):
        obs = torch.randn(64, 4)
        theirs.zero_grad(set_to_none=True)
        net(obs)["q_values"].square().mean().backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        theirs.step()
        step(twin(obs)["q_values"].square().mean())
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
