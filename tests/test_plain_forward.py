"""networks.plain_forward: the actor-critics' hot loops (rollout collection, ppo's and a2c's updates) call the
network's layers as plain functions, without nn.Module's call machinery. It must compute exactly what the module
computes (outputs and gradients bit for bit, so that training is unchanged), follow the module's parameters as
they are updated in place, and leave any network it cannot run plainly (a CNN) to be called as it is."""

from __future__ import annotations

import pytest
import torch

from rlship.network_spec import CNNSpec, ConvLayer, NetworkSpec
from rlship.networks import CNNHeadsNetwork, HeadsNetwork, plain_forward

CASES = [
    pytest.param(NetworkSpec((64, 64), "tanh", {"logits": 2, "value": 1}), id="categorical-actor-critic"),
    pytest.param(NetworkSpec((32, 16), "relu", {"logits": 3, "value": 1}, shared_trunk=True), id="shared-trunk"),
    pytest.param(NetworkSpec((64, 64), "tanh", {"mean": 2, "value": 1}, log_std=2), id="gaussian"),
    pytest.param(NetworkSpec((), "tanh", {"logits": 2}), id="no-hidden-layer"),
]


def twins(spec: NetworkSpec) -> tuple[HeadsNetwork, HeadsNetwork]:
    torch.manual_seed(0)
    net, twin = HeadsNetwork(4, spec), HeadsNetwork(4, spec)
    twin.load_state_dict(net.state_dict())
    return net, twin


@pytest.mark.parametrize("spec", CASES)
def test_outputs_and_gradients_are_the_modules_bit_for_bit(spec: NetworkSpec) -> None:
    net, twin = twins(spec)
    forward = plain_forward(twin)
    assert forward is not twin  # it runs plainly
    obs = torch.randn(33, 4)
    expected, got = net(obs), forward(obs)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    sum(v.square().sum() for v in expected.values()).backward()
    sum(v.square().sum() for v in got.values()).backward()
    for (name, a), b in zip(net.named_parameters(), twin.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None and torch.equal(a.grad, b.grad), name


def test_it_follows_the_modules_parameters_as_they_change_in_place() -> None:
    net, _ = twins(NetworkSpec((16,), "tanh", {"mean": 1, "value": 1}, log_std=1))
    forward = plain_forward(net)
    obs = torch.randn(5, 4)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    forward(obs)["mean"].sum().backward()
    optimizer.step()
    with torch.no_grad():
        net.log_std.fill_(-1.0)
    after = net(obs)
    assert all(torch.equal(after[k], v) for k, v in forward(obs).items())
    assert torch.equal(forward(obs)["log_std"], torch.full((5, 1), -1.0))


def test_a_cnn_is_called_as_it_is() -> None:
    spec = CNNSpec(conv=(ConvLayer(4, 3, 1),), hidden_sizes=(8,), activation="relu", heads={"logits": 2, "value": 1})
    net = CNNHeadsNetwork((2, 10, 10, 1), spec)
    assert plain_forward(net) is net
