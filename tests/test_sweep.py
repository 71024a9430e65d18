"""`rlship sweep`: real training runs per seed, in a process pool and on a local Ray instance started here."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rlship.cli import main
from rlship.sweep import SweepError, parse_overrides, parse_seeds
from tests.cli_run import RLSHIP

# cem on CartPole-v1 with a tiny budget: a few seconds a seed, and it has checkpoints (an interrupted seed resumes)
CHEAP_CEM = ["--set", "total_steps=3000", "--set", "eval_episodes=10"]


def _read(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


def _check_rows_match_run_folders(out: Path, data: dict) -> None:
    for row in data["runs"]:
        results = json.loads((out / f"seed-{row['seed']}" / "results.json").read_text())
        assert row["mean_reward"] == results["mean_reward"] and row["std_reward"] == results["std_reward"]
        assert row["n_eval_episodes"] == len(row["episode_returns"]) == results["n_eval_episodes"]
        assert row["out"] == f"seed-{row['seed']}"


def test_seeds_are_ranges_and_lists() -> None:
    assert parse_seeds("100-103") == [100, 101, 102, 103]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-2,10,1") == [0, 1, 2, 10]
    for bad in ("", "a-b", "5-3", "-1", "0-99999999"):
        with pytest.raises(SweepError):
            parse_seeds(bad)


def test_overrides_take_the_type_of_the_hyperparameter() -> None:
    overrides = parse_overrides("cem", ["total_steps=3000", "eval_episodes=10"])
    assert overrides == {"total_steps": 3000, "eval_episodes": 10}
    with pytest.raises(SweepError, match="has no hyperparameter 'learning_rte'"):
        parse_overrides("ppo", ["learning_rte=0.1"])
    assert parse_overrides("ppo", ["hidden_sizes=[32, 16]", "target_kl=none", "anneal_lr=false"]) == {
        "hidden_sizes": (32, 16),
        "target_kl": None,
        "anneal_lr": False,
    }


def test_a_count_may_be_written_as_rl_budgets_are() -> None:
    overrides = parse_overrides(
        "ppo", ["total_steps=1e5", "eval_episodes=100_000", "num_envs=1.6e1", "hidden_sizes=[6.4e1, 64.0]"]
    )
    assert overrides == {"total_steps": 100_000, "eval_episodes": 100_000, "num_envs": 16, "hidden_sizes": (64, 64)}
    counts = [overrides["total_steps"], overrides["num_envs"], *overrides["hidden_sizes"]]
    assert [type(v) for v in counts] == [int] * 4  # ints, not the floats 1e5 spells
    assert parse_overrides("ppo", ["total_steps=1.5e6"]) == {"total_steps": 1_500_000}
    assert parse_overrides("ppo", ["learning_rate=3e-4"]) == {"learning_rate": 3e-4}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("hidden_sizes=256", "hidden_sizes must be a list of whole numbers, such as [64, 64]; got 256"),
        ('hidden_sizes=[64,"a"]', "hidden_sizes must be a list of whole numbers, such as [64, 64]; got [64, 'a']"),
        # a count that is not whole is refused, never truncated (int() would make 64.7 a 64)
        ("hidden_sizes=[64.7]", "hidden_sizes must be a list of whole numbers, such as [64, 64]; got [64.7]"),
        ("total_steps=1.5e0", "total_steps must be a whole number (such as 1000 or 1e5); got 1.5"),
        ("total_steps=inf", "total_steps must be a whole number (such as 1000 or 1e5); got inf"),
        ("total_steps=many", "total_steps must be a whole number (such as 1000 or 1e5); got 'many'"),
        ("learning_rate=fast", "learning_rate must be a finite number (such as 0.01); got 'fast'"),
        # 1e400 reads as infinity: refused here, not passed by "> 0" to fail in a worker's training step
        ("learning_rate=1e400", "learning_rate must be a finite number (such as 0.01); got inf"),
        ("learning_rate=nan", "learning_rate must be a finite number (such as 0.01); got nan"),
        ("ent_coef=-inf", "ent_coef must be a finite number (such as 0.01); got -inf"),
        ("target_kl=off", "target_kl must be a finite number (such as 0.01), or none; got 'off'"),
        ("anneal_lr=yes", "anneal_lr must be true or false; got 'yes'"),
    ],
)
def test_a_bad_value_is_named_with_its_type_and_how_to_write_one(item: str, message: str) -> None:
    with pytest.raises(SweepError) as info:
        parse_overrides("ppo", [item])
    assert str(info.value) == f"--set {item}: {message}"


def test_a_long_bad_value_is_named_short() -> None:
    item = "hidden_sizes=" + json.dumps([8] * 65)  # past the 64 layers a config.json may describe
    with pytest.raises(SweepError) as info:
        parse_overrides("ppo", [item])
    assert str(info.value) == f"--set {item[:57]}...: hidden_sizes may hold at most 64 values; got 65"


def test_bad_input_is_one_line_and_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert main(["sweep", "random", "CartPole-v1", "--seeds", "0-1", "--out", str(theirs)]) == 1
    err = capsys.readouterr().err
    assert "is not a sweep folder" in err and err.count("\n") == 1
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    assert main(["sweep", "nope", "CartPole-v1", "--seeds", "0", "--out", str(tmp_path / "x")]) == 1
    assert "unknown algorithm 'nope'" in capsys.readouterr().err
    cem = ["sweep", "cem", "CartPole-v1", "--seeds", "0", "--out", str(tmp_path / "y")]
    assert main([*cem, "--set", "lr=1"]) == 1
    assert "cem has no hyperparameter 'lr'" in capsys.readouterr().err
    for item, message in [
        ("hidden_sizes=256", "hidden_sizes must be a list of whole numbers"),
        ("hidden_sizes=[64.7]", "hidden_sizes must be a list of whole numbers"),  # not a silent 64
        ("total_steps=2.5", "total_steps must be a whole number"),
        ("total_steps=0e0", "total_steps must be in [1, 1e10]; got 0"),  # read as a number, then its range checked
        ("total_steps=1e11", "total_steps must be in [1, 1e10]; got 100000000000"),  # a bound on one run's work
        ("learning_rate=1e400", "learning_rate must be a finite number (such as 0.01); got inf"),
        ("learning_rate=nan", "learning_rate must be a finite number (such as 0.01); got nan"),
    ]:
        assert main([*cem, "--set", item]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_bad_config_from_python_is_refused_before_any_folder_is_made(tmp_path: Path) -> None:
    # the Python API skips `--set`'s reading: the config is still built, and refused, before the sweep folder or a
    # seed folder exists, so no worker ever starts on it
    from rlship.errors import UsageError
    from rlship.sweep import sweep

    out = tmp_path / "sweep"
    for overrides in ({"learning_rate": math.inf}, {"learning_rate": math.nan}, {"total_steps": 10**11}):
        with pytest.raises(UsageError, match=r"^(learning_rate must be a finite number|total_steps must be in)"):
            sweep("cem", "CartPole-v1", [0, 1], out, overrides=overrides, workers=1)
        assert not out.exists()


def test_interrupted_sweep_keeps_finished_seeds_and_a_rerun_skips_them(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    command = [RLSHIP, "sweep", "cem", "CartPole-v1", "--seeds", "100-103", "--out", str(out), "--workers", "1"]
    command += CHEAP_CEM
    # Ctrl-C as a terminal sends it: SIGINT to the whole process group (the sweep and its pool worker)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "sweep.json").is_file() or not _read(out)["runs"]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no seed finished in 300 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    first = _read(out)
    finished = [r["seed"] for r in first["runs"] if not r["interrupted"]]
    assert finished and len(finished) < 4, first["runs"]
    interrupted = [r["seed"] for r in first["runs"] if r["interrupted"]]
    kept = {s: (out / f"seed-{s}" / "results.json").read_bytes() for s in finished}

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} seeds already finished" in rerun.stderr
    for s in finished:  # skipped: its run folder is as the first invocation left it
        assert (out / f"seed-{s}" / "results.json").read_bytes() == kept[s]
        assert f"seed {s}:" not in rerun.stderr
    data = _read(out)
    assert [r["seed"] for r in data["runs"]] == [100, 101, 102, 103]
    assert not any(r["interrupted"] for r in data["runs"])
    assert data["engine"]["seeds_run"] == [s for s in (100, 101, 102, 103) if s not in finished]
    for s in interrupted:  # stopped at a safe point with a checkpoint: the rerun resumed it
        resumed = json.loads((out / f"seed-{s}" / "results.json").read_text())["training"]["resumed_at_env_steps"]
        assert resumed, f"seed {s} was trained anew instead of resumed"
    _check_rows_match_run_folders(out, data)
    assert data["summary"]["seeds_finished"] == 4
    assert "| 103 |" in (out / "sweep.md").read_text()
    # the same folder with other hyperparameters is another sweep: refused, nothing written
    other = subprocess.run([*command[:-1], "eval_episodes=20"], capture_output=True, text=True, timeout=120)
    assert other.returncode == 1 and "one sweep folder holds one setting" in other.stderr
    assert _read(out) == data


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc (Linux)")
def test_a_killed_sweep_takes_its_pool_workers_with_it(tmp_path: Path) -> None:
    """SIGKILL (or a scheduler's SIGTERM) gives a sweep no chance to shut its pool down: its workers must not train
    on unseen, nor wait on the dead sweep's queue forever."""
    out = tmp_path / "sweep"
    command = [RLSHIP, "sweep", "cem", "CartPole-v1", "--seeds", "100-103", "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen([*command, *CHEAP_CEM], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not any((out / f"seed-{s}").is_dir() for s in (100, 101)):  # a worker is training a seed
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no seed started in 300 s"
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert workers
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, f"pool workers outlived the sweep: {workers}"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; its parent (init) reaps it


def test_sweep_on_a_local_ray_instance(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")  # in CI: must be installed
    out = tmp_path / "sweep"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        address = ray.get_runtime_context().gcs_address
        command = [RLSHIP, "sweep", "random", "CartPole-v1", "--seeds", "100-101", "--out", str(out)]
        sweep = subprocess.run(
            [*command, "--ray", address, "--set", "eval_episodes=10"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        ray.shutdown()
    assert sweep.returncode == 0, sweep.stderr
    assert "Connected to Ray cluster" in sweep.stderr  # Ray's own log line: the seeds ran as tasks of that cluster
    data = _read(out)
    assert data["engine"]["kind"] == "ray" and data["engine"]["address"] == address
    assert [r["seed"] for r in data["runs"]] == [100, 101]
    assert len({r["pid"] for r in data["runs"]}) == 2  # two tasks, one CPU each, in two Ray workers
    _check_rows_match_run_folders(out, data)
    summary = data["summary"]
    assert summary["seeds_finished"] == 2 and summary["seeds_solved"] == 0 and summary["solve_rate"] == 0
    assert summary["median_env_steps"] == 0  # the random baseline trains for zero steps
    table = (out / "sweep.md").read_text()
    assert "| seed | env steps | wall s | solved | eval mean +/- std |" in table
    assert "Solved 0 of 2 seeds" in table


def test_a_diverged_seed_is_one_line_recorded_as_failed_and_the_others_go_on(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    command = [RLSHIP, "sweep", "cem", "CartPole-v1", "--seeds", "0-1", "--out", str(out), "--workers", "1"]
    proc = subprocess.run(
        [*command, *CHEAP_CEM, "--set", "learning_rate=1e30"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    for seed in (0, 1):  # seed 1 ran after seed 0 failed
        said = [line for line in lines if line.startswith(f"rlship sweep: seed {seed}: failed: training diverged")]
        assert len(said) == 1, lines
    assert lines[-1] == "rlship sweep: 2 of 2 seeds failed (0-1); sweep.json and sweep.md record why"
    data = _read(out)
    assert [f["seed"] for f in data["failed"]] == [0, 1] and data["runs"] == []
    assert all(f["error"].startswith("training diverged at env step") for f in data["failed"])
    assert data["summary"]["seeds_failed"] == 2 and data["summary"]["seeds_finished"] == 0
    table = (out / "sweep.md").read_text()
    assert "seeds 0-1" in table and "Seed 1 failed: training diverged" in table


def test_a_seed_that_crashes_with_an_error_not_rlships_is_recorded_with_its_traceback_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    """An env's own exception in the middle of training (here Pendulum's `g` given as a string fails at its first
    step) is no rlship error: the seed's traceback is shown, the seed recorded as failed, the next seed still runs."""
    out = tmp_path / "sweep"
    command = [RLSHIP, "sweep", "reinforce", "Pendulum-v1", "--seeds", "0-1", "--out", str(out), "--workers", "1"]
    command += ["--env-kwargs", '{"g": "x"}', "--set", "total_steps=400", "--set", "eval_episodes=2"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    for seed in (0, 1):
        said = f"rlship sweep: seed {seed}: failed: TypeError: unsupported operand type(s)"
        assert proc.stderr.count(said) == 1, proc.stderr
    assert proc.stderr.count("Traceback (most recent call last):") == 2  # where, once per seed
    assert 'pendulum_vector.py", line' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("rlship sweep: 2 of 2 seeds failed (0-1)")
    data = _read(out)
    assert [f["seed"] for f in data["failed"]] == [0, 1] and data["runs"] == []
    assert all(f["error"].startswith("TypeError: ") for f in data["failed"])


def test_a_sweep_of_an_unknown_env_fails_once_before_any_seed_runs(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [RLSHIP, "sweep", "cem", "NoSuchEnv-v0", "--seeds", "0-5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "rlship sweep: error: unknown Gymnasium env 'NoSuchEnv-v0': Environment `NoSuchEnv` doesn't exist."
    ]
    assert not out.exists()


def test_a_seed_that_fails_does_not_stop_the_ones_after_it(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    command = [RLSHIP, "sweep", "random", "CartPole-v1", "--out", str(out), "--workers", "1"]
    command += ["--set", "eval_episodes=3"]
    assert subprocess.run([*command, "--seeds", "0"], capture_output=True, text=True, timeout=300).returncode == 0
    (out / "seed-1").mkdir()
    (out / "seed-1" / "notes.txt").write_text("mine")  # not a run folder: rlship must not write into it
    proc = subprocess.run([*command, "--seeds", "0-2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "rlship sweep: seed 1: failed: " in proc.stderr and "not empty and not an earlier rlship" in proc.stderr
    data = _read(out)
    assert [r["seed"] for r in data["runs"]] == [0, 2] and [f["seed"] for f in data["failed"]] == [1]
    assert (out / "seed-1" / "notes.txt").read_text() == "mine" and len(list((out / "seed-1").iterdir())) == 1
