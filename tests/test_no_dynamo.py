"""training/no_dynamo.py: torch.optim runs without importing torch._dynamo, and its steps are bit-identical to
torch's own wrappers' (each case runs in a fresh interpreter: the change is to torch.optim's classes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_STEPS = """
import json, sys
import torch
from rlship.training.no_dynamo import skip_dynamo_wrappers
patched = skip_dynamo_wrappers() if sys.argv[1] == "skip" else False
torch.manual_seed(0)
results = {}
for name, make in {
    "adam_fused": lambda p: torch.optim.Adam(p, lr=3e-3, eps=1e-5, fused=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=7e-4, alpha=0.99, eps=1e-5),
}.items():
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    opt = make(net.parameters())
    for _ in range(5):
        loss = net(torch.randn(32, 4)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    again = make(net.parameters())
    again.load_state_dict(opt.state_dict())  # a checkpoint's round trip
    results[name] = [float.hex(x) for x in torch.cat([p.detach().flatten() for p in net.parameters()]).tolist()]
print(json.dumps({"patched": patched, "dynamo": "torch._dynamo" in sys.modules, "params": results}))
"""


def run_steps(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def both() -> tuple[dict, dict]:
    return run_steps("torch"), run_steps("skip")


def test_optimizers_run_without_importing_dynamo(both: tuple[dict, dict]) -> None:
    plain, skipped = both
    assert plain["dynamo"]  # torch's own wrappers import it (so the check below can fail)
    assert skipped["patched"] and not skipped["dynamo"]


def test_steps_are_bit_identical(both: tuple[dict, dict]) -> None:
    plain, skipped = both
    assert plain["params"] == skipped["params"]
