"""Helpers for the training tests (not a test module): reading a run folder's TensorBoard scalars back, and two
networks with the same weights, for comparing a gradient step of rlship's with torch's own."""

from __future__ import annotations

from pathlib import Path

import torch

from rlship.network_spec import NetworkSpec
from rlship.networks import HeadsNetwork


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the TensorBoard event files in `run_dir`, as (env step, value) pairs in order. tensorboard
    (an optional extra) is imported here, not at the top, so importing this module does not need it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def twin_mlps(activation: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two networks with the same weights (4 inputs, hidden layers of 32 and 16, a 3-wide q_values head; seed 0):
    one stepped by torch, the other by rlship's gradient step, must stay equal."""
    torch.manual_seed(0)
    net = HeadsNetwork(4, NetworkSpec((32, 16), activation, {"q_values": 3}))
    twin = HeadsNetwork(4, NetworkSpec((32, 16), activation, {"q_values": 3}))
    twin.load_state_dict(net.state_dict())
    return net, twin
