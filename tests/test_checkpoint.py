"""Checkpoints: exact save/restore, atomic writes, clear errors, Ctrl-C, and a real interrupted-then-resumed run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlship import load_policy
from rlship.cli import main
from rlship.evaluation import evaluate
from rlship.networks import NetworkSpec
from rlship.training import ALGORITHMS
from rlship.training import checkpoint as ckpt_module
from rlship.training.checkpoint import (
    STATE_FILE,
    Checkpointer,
    CheckpointError,
    CheckpointOptions,
    read_checkpoint_state,
)
from rlship.training.run import Run, TrainResult
from rlship.training.stop_rule import EpisodeStats, StopRule
from rlship.training.train_log import TrainLog
from tests.cli_run import RLSHIP, run
from tests.conftest import make_untrained
from tests.training_helpers import read_scalars

HP = {"learning_rate": 0.01, "hidden_sizes": (16, 16)}


def make_run(out: Path, seed: int = 0, resume: bool = False, hp: dict[str, Any] | None = None) -> dict[str, Any]:
    """The objects a training loop holds, a few steps into training, and a Checkpointer for them."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpointer(out, "ppo", "CartPole-v1", seed, hp or HP, None, resume=resume)
    policy = make_untrained(seed)
    optimizer = torch.optim.Adam(policy.network.parameters(), lr=0.01)
    objects = {
        "network": policy.network,
        "optimizer": optimizer,
        "rng": np.random.default_rng(seed),
        "generator": torch.Generator().manual_seed(seed),
        "stats": EpisodeStats(2, window=3),
        "stop": StopRule(475.0, episodes=2),
        "log": TrainLog(out, 100, ["loss"], progress=False, desc="test"),
    }
    return {"ckpt": ckpt, "policy": policy, **objects}


def advance(r: dict[str, Any]) -> None:
    """A few real updates and draws, so that every object holds non-trivial state."""
    obs = torch.randn(8, 4, generator=r["generator"])
    for _ in range(3):
        loss = r["network"](obs)["logits"].pow(2).mean()  # any loss: the point is real Adam state
        r["optimizer"].zero_grad()
        loss.backward()
        r["optimizer"].step()
    r["rng"].random(5)
    r["stats"].update(np.array([1.0, 1.0]), np.array([True, False]), np.array([True, True]))
    r["stop"].confirmations.append(evaluate(r["policy"], episodes=2, seed=7))
    r["log"].log(64, r["stats"], loss=loss.item())


def tracked(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("network", "optimizer", "rng", "generator", "stats", "stop", "log")}


@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    r = make_run(out)
    r["ckpt"].track(**tracked(r))
    advance(r)
    r["ckpt"].save(env_steps=64, updates=1)
    r["log"].close()
    return out


def test_a_checkpoint_restores_every_object_exactly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    a = make_run(out)
    assert a["ckpt"].track(**tracked(a)) == {}  # a fresh run has no counters
    advance(a)
    torch.manual_seed(123)
    a["ckpt"].save(env_steps=64, updates=1)
    a["log"].close()

    b = make_run(out, seed=0, resume=True)
    advance_other = torch.Generator().manual_seed(99)  # b starts from other state: restore must overwrite it
    b["network"](torch.randn(2, 4, generator=advance_other)).get("logits").sum().backward()
    b["optimizer"].step()
    counters = b["ckpt"].track(**tracked(b))
    assert counters == {"env_steps": 64, "updates": 1}
    for (ka, va), (kb, vb) in zip(a["network"].state_dict().items(), b["network"].state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    sa, sb = a["optimizer"].state_dict(), b["optimizer"].state_dict()
    assert sa["param_groups"][0]["lr"] == sb["param_groups"][0]["lr"]
    for pid, state in sa["state"].items():
        for key, value in state.items():
            assert torch.equal(value, sb["state"][pid][key]), (pid, key)
    # the RNG streams go on where they were: the next draws are equal
    assert np.array_equal(a["rng"].random(4), b["rng"].random(4))
    assert torch.equal(torch.rand(3, generator=a["generator"]), torch.rand(3, generator=b["generator"]))
    assert list(a["stats"].recent) == list(b["stats"].recent) and a["stats"].episodes == b["stats"].episodes == 1
    assert [c.mean_reward for c in b["stop"].confirmations] == [c.mean_reward for c in a["stop"].confirmations]
    assert b["log"].rows == a["log"].rows and b["log"].elapsed() >= a["log"].rows[-1]["wall_seconds"]
    with (out / "train_log.csv").open() as f:  # the CSV holds the checkpoint's rows, ready to be appended to
        assert [int(row["env_steps"]) for row in csv.DictReader(f)] == [64]
    b["log"].close()
    assert b["ckpt"].resumed_at == [64]


def test_the_global_torch_rng_is_restored(saved_run: Path) -> None:
    state = read_checkpoint_state(saved_run)
    b = make_run(saved_run, resume=True)
    torch.manual_seed(999)
    b["ckpt"].track(**tracked(b))
    b["log"].close()
    expected = torch.Generator()
    from safetensors.torch import load_file

    expected.set_state(load_file(str(saved_run / "checkpoint" / state["tensors_file"]))["rng/torch"])
    assert torch.equal(torch.rand(4), torch.rand(4, generator=expected))


def test_a_failed_write_leaves_the_previous_checkpoint(saved_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = make_run(saved_run, resume=True)
    r["ckpt"].track(**tracked(r))
    real_replace = os.replace

    def crash_on_commit(src: Any, dst: Any) -> None:
        if Path(dst).name == STATE_FILE:
            raise OSError("disk full (simulated crash at the commit point)")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt_module.os, "replace", crash_on_commit)
    with pytest.raises(OSError, match="simulated"):
        r["ckpt"].save(env_steps=999, updates=9)
    monkeypatch.undo()
    r["log"].close()
    again = make_run(saved_run, resume=True)
    assert again["ckpt"].track(**tracked(again)) == {"env_steps": 64, "updates": 1}  # the old one, intact
    again["log"].close()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / STATE_FILE).unlink(), "no checkpoint to resume from"),
        (lambda d: (d / STATE_FILE).write_text("{not json"), "not valid JSON"),
        (lambda d: next(d.glob("tensors-*")).write_bytes(b"garbage"), "do not match the checksum"),
        (lambda d: next(d.glob("tensors-*")).unlink(), "tensor file missing"),
    ],
)
def test_a_damaged_checkpoint_is_refused_with_a_clear_error(saved_run: Path, damage: Any, message: str) -> None:
    damage(saved_run / "checkpoint")
    with pytest.raises(CheckpointError, match=message):
        make_run(saved_run, resume=True)


def rewrite_tensor_file(checkpoint: Path, damage: Any) -> None:
    """Damage the tensor file with `damage(bytes) -> bytes`, and give state.json the new file's checksum."""
    import hashlib

    state = json.loads((checkpoint / STATE_FILE).read_text())
    path = checkpoint / state["tensors_file"]
    path.write_bytes(data := damage(path.read_bytes()))
    state["tensors_sha256"] = hashlib.sha256(data).hexdigest()
    (checkpoint / STATE_FILE).write_text(json.dumps(state))


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-100],  # cut short
        lambda data: (len(data) * 2).to_bytes(8, "little") + data[8:],  # a header longer than the file
    ],
)
def test_a_tensor_file_that_matches_its_checksum_but_not_the_format_is_refused(saved_run: Path, damage: Any) -> None:
    rewrite_tensor_file(saved_run / "checkpoint", damage)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        make_run(saved_run, resume=True)


def with_u16_tensor(data: bytes) -> bytes:
    """The tensor file with one more tensor, of a dtype safetensors knows and a checkpoint never holds (U16)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    end = len(data) - 8 - length
    header["extra/x"] = {"dtype": "U16", "shape": [2], "data_offsets": [end, end + 4]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads its header to 8 bytes
    return len(raw).to_bytes(8, "little") + raw + data[8 + length :] + b"\0" * 4


def test_a_tensor_file_safetensors_reads_but_rlship_does_not_is_refused_by_the_header_reader(saved_run: Path) -> None:
    """safetensors' own check passes (a U16 tensor is valid safetensors); rlship.safetensors_header refuses it,
    and the message is the checkpoint's around the reader's."""
    rewrite_tensor_file(saved_run / "checkpoint", with_u16_tensor)
    with pytest.raises(CheckpointError, match=r"not a readable safetensors file \(tensor 'extra/x' has dtype 'U16';"):
        make_run(saved_run, resume=True)


def test_a_tensor_file_replaced_after_its_check_is_not_read(saved_run: Path, tmp_path: Path) -> None:
    """The tensor file is hashed and then read through one open descriptor: a file put in its place after the
    check (here a valid checkpoint of other weights) is not what the resume restores."""
    from safetensors.torch import load_file

    path = saved_run / "checkpoint" / read_checkpoint_state(saved_run)["tensors_file"]
    checked = {k.removeprefix("network/"): v for k, v in load_file(path).items() if k.startswith("network/")}
    r = make_run(saved_run, resume=True)  # checked: its tensor file is open
    other = make_run(tmp_path / "other", seed=1)
    other["ckpt"].track(**tracked(other))
    advance(other)
    other["ckpt"].save(env_steps=64, updates=1)
    other["log"].close()
    os.replace(next((tmp_path / "other" / "checkpoint").glob("tensors-*")), path)
    r["ckpt"].track(**tracked(r))
    r["log"].close()
    restored = r["network"].state_dict()
    assert checked.keys() == restored.keys() and all(torch.equal(checked[k], restored[k]) for k in checked)
    assert not all(torch.equal(other["network"].state_dict()[k], restored[k]) for k in checked)


PIXEL_OBS = (2, 25, 100, 1)  # the pixel preset's frame stack until 2026-11-30: 10 kB a transition (obs and next)


def test_a_resume_reads_the_replay_memory_straight_into_its_arrays(tmp_path: Path) -> None:
    """A resume reads the tensor file tensor by tensor, the replay memory straight from the file into its own
    arrays: the Python heap (bytes and NumPy arrays, what tracemalloc sees) grows by a small fraction of the file.
    Reading the whole file into one bytes object (as resumes did), or the memory through a NumPy copy, would add
    at least the memory's size."""
    import tracemalloc

    from rlship.training.dqn import ReplayBuffer

    n = 3000  # 30 MB
    rng = np.random.default_rng(0)
    saved = ReplayBuffer(n, PIXEL_OBS, np.uint8)
    obs = rng.integers(0, 256, (n, *PIXEL_OBS), dtype=np.uint8)
    saved.add(obs, rng.integers(0, 2, n), rng.random(n), obs[::-1], rng.random(n) < 0.1, np.ones(n, dtype=bool))
    out = tmp_path / "run"
    ckpt = Checkpointer(out, "dqn", "rlship/CartPolePixels-v1", 0, {})
    ckpt.track(buffer=saved)
    ckpt.save(env_steps=n)
    file_size = next((out / "checkpoint").glob("tensors-*")).stat().st_size
    assert file_size >= saved.nbytes > 30e6

    restored = ReplayBuffer(n, PIXEL_OBS, np.uint8)  # made before the checkpoint is read, as a run makes it
    tracemalloc.start()
    try:
        Checkpointer(out, "dqn", "rlship/CartPolePixels-v1", 0, {}, resume=True).track(buffer=restored)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < file_size / 20, f"a resume of a {file_size:,}-byte checkpoint took {peak:,} bytes of heap"
    assert (restored.pos, restored.size) == (saved.pos, saved.size) == (0, n)
    for name in ReplayBuffer._ARRAYS:
        np.testing.assert_array_equal(getattr(restored, name), getattr(saved, name))


def test_a_replay_memory_of_another_dtype_or_shape_is_cast_or_refused_on_resume(tmp_path: Path) -> None:
    """Where the saved array is not of the memory's dtype (float64 observations restored into float32 ones) it is
    copied and cast, as before; another shape is refused with a clear error, not read into the memory."""
    from rlship.training.dqn import ReplayBuffer

    saved = ReplayBuffer(8, 2, np.float64)
    obs = np.random.default_rng(0).normal(size=(5, 2))
    saved.add(obs, np.arange(5), np.ones(5), obs + 1, np.zeros(5), np.ones(5, dtype=bool))
    out = tmp_path / "run"
    ckpt = Checkpointer(out, "dqn", "CartPole-v1", 0, {})
    ckpt.track(buffer=saved)
    ckpt.save(env_steps=5)
    restored = ReplayBuffer(8, 2)
    Checkpointer(out, "dqn", "CartPole-v1", 0, {}, resume=True).track(buffer=restored)
    assert restored.obs.dtype == np.float32 and restored.size == 5
    np.testing.assert_array_equal(restored.obs[:5], obs.astype(np.float32))
    np.testing.assert_array_equal(restored.next_obs[:5], (obs + 1).astype(np.float32))
    with pytest.raises(CheckpointError, match=r"cannot restore 'buffer'.*could not broadcast"):
        Checkpointer(out, "dqn", "CartPole-v1", 0, {}, resume=True).track(buffer=ReplayBuffer(8, 3))


def test_tensors_that_share_memory_are_saved_and_restored(tmp_path: Path) -> None:
    """Tensors are written from their own memory, uncopied; safetensors refuses two names for one memory, so a
    module tracked twice (or tied weights) is copied once, and both come back equal."""
    out = tmp_path / "run"
    net = make_untrained(0).network
    ckpt = Checkpointer(out, "ppo", "CartPole-v1", 0, HP, None)
    ckpt.track(net=net, same_net=net)
    ckpt.save(env_steps=1)
    again = Checkpointer(out, "ppo", "CartPole-v1", 0, HP, None, resume=True)
    a, b = make_untrained(1).network, make_untrained(2).network
    again.track(net=a, same_net=b)
    for name, value in net.state_dict().items():
        assert torch.equal(a.state_dict()[name], value) and torch.equal(b.state_dict()[name], value)


def test_a_checkpoint_of_another_run_is_refused(saved_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckpointError, match=r"learning_rate: checkpoint 0.01, now 0.5"):
        make_run(saved_run, resume=True, hp={**HP, "learning_rate": 0.5})
    with pytest.raises(CheckpointError, match="seed=0"):
        make_run(saved_run, seed=1, resume=True)
    assert main(["train", "dqn", "CartPole-v1", "--resume", str(saved_run)]) == 1
    assert "rlship train ppo CartPole-v1 --resume" in capsys.readouterr().err
    assert main(["train", "ppo", "CartPole-v1", "--resume", str(saved_run), "--gamma", "0.5"]) == 1
    assert "--gamma 0.5 (the run has None)" in capsys.readouterr().err
    assert main(["train", "ppo", "CartPole-v1", "--resume", str(saved_run.parent / "nowhere")]) == 1
    assert "no such run folder" in capsys.readouterr().err


def test_ctrl_c_asks_for_a_stop_and_a_second_one_aborts(tmp_path: Path) -> None:
    algo = ALGORITHMS["ppo"]
    out = tmp_path / "run"
    config = algo.make_config("CartPole-v1", total_steps=1000)
    run = Run(algo, "CartPole-v1", config, 0, out, False, None, CheckpointOptions(float("inf")), False)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), run.running():
        envs = run.vec_env(2)
        run.new_policy(envs, NetworkSpec((8,), "tanh", {"logits": 2}))
        run.start(["loss"], 2)
        assert run.update(loss=1.0) is False
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs in this (main) thread at the next bytecode
        assert run.update(loss=1.0) is True and run.interrupted
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back
    assert read_checkpoint_state(out)["counters"] == {"env_steps": 0, "updates": 2}  # written at the stop


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before it wrote {path}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def log_steps(run_dir: Path) -> list[int]:
    with (run_dir / "train_log.csv").open() as f:
        return [int(row["env_steps"]) for row in csv.DictReader(f)]


def test_interrupt_a_real_training_run_then_resume_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "ppo", "CartPole-v1", "--seed", "1", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(
        [RLSHIP, *args, "--total-steps", "8000", "--eval-episodes", "10", "--checkpoint-every", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(out / "checkpoint" / STATE_FILE, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"--resume {out}" in stderr and "Traceback" not in stderr

    # the interrupted run left a valid checkpoint and a usable, honestly labelled artifact
    stopped_at = read_checkpoint_state(out)["counters"]["env_steps"]
    assert 0 < stopped_at < 8000 and json.loads(stdout)["env_steps"] == stopped_at
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["solved"] is False and results["n_eval_episodes"] == 10
    assert "interrupted" in results["note"]
    assert load_policy(out).act(np.zeros(4)).actions.shape == (1,)
    assert (out / "training_curve.png").exists() and log_steps(out)[-1] == stopped_at

    # explicit flags that contradict the run are refused (the CLI's own code, in this process to save a start-up)
    assert main(["train", "ppo", "CartPole-v1", "--resume", str(out), "--gamma", "0.5", "--seed", "1"]) == 1
    error = capsys.readouterr().err
    assert "--gamma 0.5 (the run has 0.98)" in error and "--seed" not in error  # --seed 1 is the run's own seed

    resumed = run("train", "ppo", "CartPole-v1", "--resume", str(out), "--no-progress")
    summary = json.loads(resumed.stdout)
    assert summary["interrupted"] is False and summary["env_steps"] > stopped_at
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is False and results["n_eval_episodes"] == 10
    assert results["training"]["resumed_at_env_steps"] == [stopped_at]
    steps = log_steps(out)  # one log: the first part's rows, then the resumed part's, steps still increasing
    assert steps == sorted(set(steps)) and stopped_at in steps and steps[-1] == summary["env_steps"]
    assert 0 < steps[steps.index(stopped_at) + 1] - stopped_at <= 32 * 32  # one more PPO rollout
    # TensorBoard holds both parts too (two event files, one per process), on the same env-step axis as the CSV
    assert len(list(out.glob("events.out.tfevents.*"))) == 2
    assert [step for step, _ in read_scalars(out)["rollout/return_mean"]] == steps
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 1 and config["hyperparameters"]["total_steps"] == 8000  # same run, same budget
    assert main(["train", "ppo", "CartPole-v1", "--resume", str(out)]) == 1
    assert "nothing to resume" in capsys.readouterr().err


def test_sigterm_stops_a_run_cleanly_as_ctrl_c_does(tmp_path: Path) -> None:
    """`docker stop`, Kubernetes and job schedulers send SIGTERM, then SIGKILL after a grace period: the run stops at
    its next update with a checkpoint and an artifact, and says so with 143 (128 + SIGTERM), as a shell would."""
    out = tmp_path / "run"
    args = ["train", "ppo", "CartPole-v1", "--seed", "2", "--out", str(out), "--no-progress", "--total-steps", "1e6"]
    proc = subprocess.Popen(
        [RLSHIP, *args, "--eval-episodes", "5", "--checkpoint-every", "inf"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(out / "train_log.csv", proc)
    while len(log_steps(out)) < 2:  # a rollout learned from: the loop is running
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "SIGTERM: stopping at the end of this update" in stderr and "Traceback" not in stderr
    stopped_at = read_checkpoint_state(out)["counters"]["env_steps"]
    assert 0 < stopped_at < 1_000_000 and json.loads(stdout)["env_steps"] == stopped_at
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["n_eval_episodes"] == 5
    assert f"--resume {out}" in stderr


def _ppo_interrupted_after_its_first_checkpoint(out: Path) -> TrainResult:
    """`ppo.train` (CartPole-v1, seed 2, 6000 env steps, a checkpoint at every update) in this process, stopped by a
    SIGINT to this process once its first checkpoint is on disk; its TrainResult."""
    import threading

    from rlship.training import ppo

    cfg = ppo.make_config("CartPole-v1", total_steps=6000, eval_episodes=5)

    def interrupt_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / STATE_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # handled in the main thread, where train runs

    thread = threading.Thread(target=interrupt_after_first_checkpoint)
    thread.start()
    first = ppo.train("CartPole-v1", cfg, seed=2, out=out, progress=False, checkpoint=CheckpointOptions(0))
    thread.join()
    return first


def test_python_api_interrupt_and_resume(tmp_path: Path) -> None:
    """The same in Python: SIGINT to this process stops `ppo.train` cleanly; `rlship.training.resume` goes on."""
    from rlship.training import resume

    out = tmp_path / "run"
    first = _ppo_interrupted_after_its_first_checkpoint(out)
    assert first.interrupted and not first.solved and first.evaluation.n_eval_episodes == 5
    assert first.env_steps == read_checkpoint_state(out)["counters"]["env_steps"] < 6000
    second = resume(out, progress=False)
    assert not second.interrupted and second.env_steps >= 6000
    assert json.loads((out / "results.json").read_text())["training"]["resumed_at_env_steps"] == [first.env_steps]


def test_a_checkpoint_from_before_a_shared_setting_existed_resumes_at_its_default(saved_run: Path) -> None:
    # saved_run's checkpoint holds HP only: as if written before stop_on_solve, keep_best and confirm_every existed
    now = {**HP, "stop_on_solve": True, "keep_best": False, "confirm_every": 0}
    make_run(saved_run, resume=True, hp=now)["log"].close()  # the defaults: the same run
    with pytest.raises(CheckpointError, match=r"keep_best: checkpoint False, now True"):
        make_run(saved_run, resume=True, hp={**now, "keep_best": True})


def test_a_checkpoint_from_before_an_algorithm_setting_existed_resumes_at_its_default(tmp_path: Path) -> None:
    """An algorithm's own setting added after a checkpoint was written (ppo's anneal_to) ran at its default there:
    the run resumes; a value other than the default is refused as any changed hyperparameter."""
    from rlship.training import ppo, resume

    out = tmp_path / "run"
    first = _ppo_interrupted_after_its_first_checkpoint(out)
    assert first.interrupted
    state_path = out / "checkpoint" / STATE_FILE
    state = json.loads(state_path.read_text())
    assert state["hyperparameters"].pop("anneal_to") == 0.0  # as written before anneal_to existed
    state_path.write_text(json.dumps(state))

    with pytest.raises(CheckpointError, match=r"anneal_to: checkpoint 0.0, now 0.5"):
        ppo.train(
            "CartPole-v1",
            ppo.make_config("CartPole-v1", total_steps=6000, eval_episodes=5, anneal_to=0.5),
            seed=2,
            out=out,
            progress=False,
            checkpoint=CheckpointOptions(0, resume=True),
        )
    second = resume(out, progress=False)
    assert not second.interrupted and second.env_steps >= 6000
