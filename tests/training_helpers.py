"""Helpers for the training tests (not a test module): reading a run folder's TensorBoard scalars back, two
networks with the same weights, for comparing a gradient step of rlship's with torch's own, and a run stopped by
Ctrl-C after its first update."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from rlship.network_spec import NetworkSpec
from rlship.networks import HeadsNetwork
from rlship.training import Algorithm
from rlship.training.checkpoint import CheckpointOptions
from rlship.training.run import Run, TrainResult


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


def train_until_ctrl_c(algorithm: Algorithm, env_id: str, config: Any, out: Path, seed: int = 2) -> TrainResult:
    """`algorithm.train` into `out`, with a real SIGINT (as from a terminal) sent to this process after the first
    update, before the second update's safe point: the run stops there, writes its checkpoint and artifact, and
    returns interrupted. No periodic checkpoint (every_seconds=inf), so the one in `out` is the one Ctrl-C wrote."""
    real_update = Run.update

    def ctrl_c_after_the_first_update(self: Run, *args: Any, **kwargs: Any) -> bool:
        if self.updates == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real_update(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Run, "update", ctrl_c_after_the_first_update)
        checkpoint = CheckpointOptions(math.inf)
        return algorithm.train(env_id, config, seed=seed, out=out, progress=False, checkpoint=checkpoint)
