"""training/td_gradients.py: DQN's Huber TD loss gradients for a plain MLP, written out, are bit for bit autograd's."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from rlship.networks import mlp, plain_layers
from rlship.training.td_gradients import td_gradients


def autograd_reference(net: torch.nn.Module, obs, actions, targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
    for p in net.parameters():
        p.grad = None
    q = net(obs).gather(1, actions[:, None]).squeeze(1)
    loss = F.smooth_l1_loss(q, targets)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize(
    ("obs_dim", "hidden", "activation", "n_actions", "batch"),
    [(4, (128, 128), "relu", 2, 128), (8, (64, 64), "tanh", 4, 64), (3, (32,), "relu", 5, 37), (6, (), "relu", 3, 1)],
)
def test_gradients_are_autograds_bit_for_bit(obs_dim, hidden, activation, n_actions, batch) -> None:
    torch.manual_seed(0)
    net = mlp(obs_dim, hidden, activation, n_actions)
    twin = copy.deepcopy(net)
    grads_fn = td_gradients(plain_layers(twin))
    assert grads_fn is not None
    for trial in range(5):
        obs = torch.randn(batch, obs_dim) * (1 + trial)
        actions = torch.randint(0, n_actions, (batch,))
        # targets near and far from the predictions: both sides of the Huber loss's kink at 1
        targets = torch.randn(batch) * (0.1 if trial % 2 else 5.0)
        loss_ref, grads_ref = autograd_reference(net, obs, actions, targets)
        loss, q_taken = grads_fn(obs, actions, targets)
        assert torch.equal(loss, loss_ref)
        assert torch.equal(q_taken, net(obs).gather(1, actions[:, None]).squeeze(1).detach())
        for mine, ref in zip((p.grad for p in twin.parameters()), grads_ref, strict=True):
            assert mine.shape == ref.shape
            assert torch.equal(mine, ref)


def test_networks_it_does_not_know_keep_autograd() -> None:
    assert td_gradients(None) is None  # not a plain MLP (the CNN): networks.plain_layers said None
    assert td_gradients([]) is None
    assert td_gradients([(torch.zeros(2, 3), torch.zeros(2)), torch.relu]) is None  # ends in an activation
    assert (
        td_gradients([(torch.zeros(2, 3), torch.zeros(2)), torch.sigmoid, (torch.zeros(1, 2), torch.zeros(1))]) is None
    )
