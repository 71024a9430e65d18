"""The `rlship` console script, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_run import RLSHIP, run


def test_evaluate_prints_results_json() -> None:
    out = json.loads(run("evaluate", "default", "--episodes", "20", "--seed", "3").stdout)
    assert out["source"] == "default" and out["env_id"] == "CartPole-v1" and out["algorithm"] == "ppo"
    assert out["n_eval_episodes"] == 20 and len(out["episode_returns"]) == 20
    assert out["deterministic"] is True and out["seed"] == 3
    assert out["mean_reward"] >= 475


def test_train_writes_a_run_folder_and_warns_when_unsolved(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run(
        "train",
        "ppo",
        "CartPole-v1",
        "--seed",
        "2",
        "--out",
        str(out),
        "--total-steps",
        "1.5e3",  # counts as RL budgets are written (1e6); read as the whole numbers they are
        "--num-envs",
        "8",
        "--hidden-sizes",
        "16",
        "1.6e1",
        "--no-anneal-lr",
        "--no-progress",
        "--eval-episodes",
        "10",
    )
    summary = json.loads(proc.stdout)
    assert summary["solved"] is False and summary["env_steps"] >= 1500
    assert "not solved" in proc.stderr and "--total-steps" in proc.stderr
    config = json.loads((out / "config.json").read_text())
    hp = config["hyperparameters"]
    assert hp["num_envs"] == 8 and hp["hidden_sizes"] == [16, 16] and hp["anneal_lr"] is False
    assert hp["total_steps"] == 1500 and type(hp["total_steps"]) is int and type(hp["hidden_sizes"][1]) is int
    assert hp["gamma"] == 0.98  # flags left out keep the CartPole-v1 preset
    assert (out / "train_log.csv").exists() and (out / "training_curve.png").exists()
    evaluated = json.loads(run("evaluate", str(out), "--episodes", "5").stdout)
    shipped = json.loads((out / "results.json").read_text())
    assert evaluated["n_eval_episodes"] == 5
    assert evaluated["episode_returns"] == shipped["episode_returns"][:5]  # same protocol, same first seeds


def test_help_lists_every_hyperparameter() -> None:
    from dataclasses import fields

    from rlship.training.ppo import PPOConfig

    text = run("train", "ppo", "--help").stdout
    for f in fields(PPOConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("evaluate", "/no/such/folder"), "no such policy folder"),
        (("train", "ppo", "CartPole-v1", "--num-envs", "0", "--no-progress"), "num_envs must be in [1, 4096]"),
        (("train", "dqn", "Pendulum-v1", "--no-progress"), "Discrete action spaces"),
        # a count that is not whole: refused (never truncated), as `rlship sweep --set` refuses it
        (
            ("train", "ppo", "CartPole-v1", "--total-steps", "2.5", "--no-progress"),
            "rlship train: error: total_steps must be a whole number (such as 1000 or 1e5); got 2.5",
        ),
        (
            ("train", "ppo", "CartPole-v1", "--hidden-sizes", "64.7", "--no-progress"),
            "rlship train: error: hidden_sizes must be a list of whole numbers, such as [64, 64]; got [64.7]",
        ),
        # 1e400 reads as infinity, which passed "> 0" and failed in the first update with a traceback
        (
            ("train", "ppo", "CartPole-v1", "--learning-rate", "1e400", "--no-progress"),
            "rlship train: error: learning_rate must be a finite number (such as 0.01); got inf",
        ),
        (
            ("train", "ppo", "CartPole-v1", "--total-steps", "1e11", "--no-progress"),
            "rlship train: error: total_steps must be in [1, 1e10]; got 100000000000",
        ),
        # the system refuses the folder (a path that cannot be made): its words, the path, no traceback
        (
            ("train", "ppo", "CartPole-v1", "--out", "/proc/self/run", "--no-progress"),
            "rlship train: error: /proc/self/run: No such file or directory (errno 2)",
        ),
    ],
)
def test_errors_are_one_clear_line_not_a_traceback(args: tuple[str, ...], message: str) -> None:
    proc = run(*args, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # not argparse's usage of every flag


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run rlship with stdout on a pseudo-terminal, as in an interactive shell; (exit code, what it printed)."""
    import os
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([RLSHIP, *args], stdout=follower, stderr=subprocess.PIPE, text=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    proc.wait(timeout=300)
    return proc.returncode, b"".join(chunks).decode().replace("\r\n", "\n")


def test_evaluate_prints_a_summary_on_a_terminal_and_json_with_the_flag(saved_policy: Path) -> None:
    code, text = _on_a_terminal("evaluate", "default", "--episodes", "3", "--seed", "2")
    assert code == 0
    lines = text.strip().splitlines()
    assert lines[0] == "ppo on CartPole-v1 from default"
    assert lines[1] == "mean_reward 500.00 +/- 0.00 over 3 episodes (greedy actions)"
    assert "episode seeds 1000002-1000004" in lines[3] and len(lines) == 4

    # --json on a terminal; and the random baseline says its actions are random
    config = json.loads((saved_policy / "config.json").read_text())
    config["action_distribution"] = {"kind": "uniform"}
    (saved_policy / "config.json").write_text(json.dumps(config))
    code, text = _on_a_terminal("evaluate", str(saved_policy), "--episodes", "3", "--json")
    assert code == 0
    out = json.loads(text)
    assert out["random_actions"] is True and out["n_eval_episodes"] == 3
    code, text = _on_a_terminal("evaluate", str(saved_policy), "--episodes", "3")
    assert "(random actions: the random baseline samples even when greedy actions are asked)" in text


# The console script's end (`cli.run`): `main`'s work, then the exit handlers and the flushed output, without the
# interpreter's teardown. Each case runs `run` in a fresh interpreter, with a `main` that sets up what it checks.
_RUN = """
import atexit, os, sys, threading, time
import rlship.cli as cli
OUT = sys.argv[1]

TORN_DOWN = os.open(os.path.join(OUT, "torn-down"), os.O_WRONLY | os.O_CREAT)

class TornDown:  # a module global: finalised by the interpreter's teardown, and only there
    def __del__(self, write=os.write, fd=TORN_DOWN):  # bound now: the teardown clears builtins and globals
        write(fd, b"yes")

torn_down = TornDown()

def late_write():
    time.sleep(0.3)
    with open(os.path.join(OUT, "thread"), "w") as f:
        f.write("done")

def main():
    atexit.register(lambda: open(os.path.join(OUT, "atexit"), "w").write("ran"))
    if "thread" in sys.argv:
        threading.Thread(target=late_write).start()  # not a daemon: a normal exit waits for it
    # more than the pipe's buffer: part of it still in Python's at the end ("small": all of it, if buffered)
    sys.stdout.write("x" * (10 if "small" in sys.argv else 200_000))
    return 3

cli.main = main
{ending}
"""


def _end_of(ending: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = _RUN.replace("{ending}", ending)
    return subprocess.run([sys.executable, "-c", script, str(out), *args], capture_output=True, text=True, timeout=60)


def test_the_console_script_skips_the_teardown_but_not_the_exit_handlers_or_the_output(tmp_path: Path) -> None:
    normal, fast = tmp_path / "normal", tmp_path / "fast"
    normal.mkdir(), fast.mkdir()
    proc = _end_of("import sys; sys.exit(cli.main())", normal)  # what the script did before: a normal exit
    assert (normal / "torn-down").read_text() == "yes"  # so the check below can see a teardown

    proc = _end_of("cli.run()", fast)
    assert proc.returncode == 3 and proc.stdout == "x" * 200_000 and not proc.stderr
    assert (fast / "atexit").read_text() == "ran"
    assert (fast / "torn-down").read_text() == ""


def test_the_console_script_waits_for_a_running_thread(tmp_path: Path) -> None:
    proc = _end_of("cli.run()", tmp_path, "thread")
    assert proc.returncode == 3 and proc.stdout == "x" * 200_000
    assert (tmp_path / "thread").read_text() == "done"  # the thread's work is not cut off
    assert (tmp_path / "atexit").read_text() == "ran"


def test_output_to_a_reader_that_left_ends_quietly() -> None:
    proc = subprocess.Popen(
        [RLSHIP, "evaluate", "default", "--episodes", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head` that read nothing and left before rlship printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_a_command_started_with_its_output_closed_still_runs() -> None:
    # `rlship evaluate ... >&-`: Python starts with no stdout stream at all (sys.stdout is None)
    proc = subprocess.run(
        ["sh", "-c", 'exec "$0" evaluate default --episodes 2 >&-', RLSHIP], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


# `rlship ... > /dev/full`: every write to it fails with ENOSPC, as on a full disk
DEV_FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full on this system")
NO_SPACE = "cannot write output: No space left on device"


def _on_dev_full(*args: str, unbuffered: bool = False) -> subprocess.CompletedProcess[str]:
    """The console script with stdout on /dev/full; stdout buffered (Python's default for a file) unless asked."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1" if unbuffered else ""}  # empty: unset, to Python
    with DEV_FULL.open("w") as full:
        return subprocess.run([RLSHIP, *args], stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=300)


@needs_dev_full
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_output_that_cannot_be_written_is_one_line_not_a_traceback(unbuffered: bool) -> None:
    # unbuffered, the print itself fails inside the command; buffered, the write fails when it is flushed
    proc = _on_dev_full("evaluate", "default", "--episodes", "2", unbuffered=unbuffered)
    assert (proc.returncode, proc.stderr) == (1, f"rlship evaluate: error: {NO_SPACE}\n")


@needs_dev_full
def test_every_command_that_prints_a_result_says_when_it_cannot(tmp_path: Path) -> None:
    run_dir, hub_dir, sweep_dir, export_dir = tmp_path / "run", tmp_path / "hub", tmp_path / "sweep", tmp_path / "ts"
    commands = {  # the random baseline: a whole run folder in about a second
        "train": ("random", "CartPole-v1", "--eval-episodes", "2", "--out", str(run_dir), "--no-progress"),
        "package": (str(run_dir), "--out", str(hub_dir), "--no-video", "--episodes", "2"),
        "sweep": ("random", "CartPole-v1", "--seeds", "0", "--out", str(sweep_dir), "--set", "eval_episodes=2"),
        "export": ("default", "--format", "torchscript", "--out", str(export_dir)),
    }
    # the error says what was written: only the report is lost, not the work (which exit 1 alone would suggest)
    written = {
        "train": f"the run folder {run_dir} was written (its results.json holds these figures)",
        "package": f"the package folder {hub_dir} was written",
        "sweep": f"the sweep folder {sweep_dir} was written (sweep.json, sweep.md)",
        "export": f"the export folder {export_dir} was written",
    }
    for command, args in commands.items():
        proc = _on_dev_full(command, *args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.splitlines()[-1] == f"rlship {command}: error: {NO_SPACE}; {written[command]}"
    # the work was done; only its report could not be printed
    assert (run_dir / "results.json").is_file() and (hub_dir / "README.md").is_file()
    assert (sweep_dir / "sweep.json").is_file() and (export_dir / "agent.pt").is_file()


@needs_dev_full
def test_output_left_for_the_final_flush_that_fails_is_one_line(tmp_path: Path) -> None:
    # what a library printed, still in stdout's buffer when the command returns: flushed, and failing, at the end
    script = _RUN.replace("{ending}", "cli.run()")
    env = {**os.environ, "PYTHONUNBUFFERED": ""}
    with DEV_FULL.open("w") as full:
        command = [sys.executable, "-c", script, str(tmp_path), "small"]
        proc = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    assert (proc.returncode, proc.stderr) == (3, f"rlship: {NO_SPACE}\n")  # the command's own status kept


# Every whole-number flag reads a count as `rlship train`'s hyperparameters do (rlship/whole_numbers.py): 1e3 and
# 1_000 are 1000; 1.5 or inf is argparse's error naming the flag; each flag's own range is checked as before.
WHOLE_NUMBER_FLAGS = [
    (["evaluate", "default"], "--episodes", "episodes"),
    (["evaluate", "default"], "--seed", "seed"),
    (["package", "runs/x", "--out", "hub"], "--episodes", "episodes"),
    (["package", "runs/x", "--out", "hub"], "--seed", "seed"),
    (["export", "default", "--format", "onnx", "--out", "x"], "--opset", "opset"),
    (["simulate"], "--episodes", "episodes"),
    (["simulate"], "--seed", "seed"),
    (["sweep", "random", "CartPole-v1", "--seeds", "0", "--out", "x"], "--workers", "workers"),
    (["serve"], "--port", "port"),
    (["serve"], "--workers", "workers"),
    (["serve"], "--max-batch", "max_batch"),
    (["serve"], "--timeout", "timeout"),
    (["serve"], "--max-body-bytes", "max_body_bytes"),
    (["serve"], "--keep-alive", "keep_alive"),
    (["serve"], "--max-connections", "max_connections"),
    (["serve"], "--max-sessions", "max_sessions"),
]


@pytest.mark.parametrize(
    ("argv", "flag", "dest"), WHOLE_NUMBER_FLAGS, ids=[f"{a[0]}{f}" for a, f, _ in WHOLE_NUMBER_FLAGS]
)
def test_whole_number_flags_read_counts_as_they_are_written(
    argv: list[str], flag: str, dest: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlship.cli import build_parser

    parser = build_parser(argv[0])
    for text, value in (("1e3", 1000), ("2_000", 2000), ("17", 17), ("1.5e1", 15)):
        assert getattr(parser.parse_args([*argv, flag, text]), dest) == value
    for bad in ("1.5", "inf", "nan", "many"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([*argv, flag, bad])
        assert exit_info.value.code == 2
        assert f"argument {flag}: must be a whole number (such as 1000 or 1e5); got '{bad}'" in capsys.readouterr().err


def test_a_count_flag_written_1e0_runs_and_keeps_its_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(run("evaluate", "default", "--episodes", "2e0", "--seed", "1e0").stdout)
    assert out["n_eval_episodes"] == 2 and out["seed"] == 1
    # the flags' own ranges and one-line errors, as before
    from rlship.cli import main

    sweep_dir = tmp_path / "sweep"
    assert main(["sweep", "random", "CartPole-v1", "--seeds", "0", "--out", str(sweep_dir), "--workers", "0e0"]) == 1
    assert capsys.readouterr().err == "rlship sweep: error: --workers must be at least 1; got 0\n"
    assert not sweep_dir.exists()
    assert main(["evaluate", "default", "--episodes", "1e5"]) == 1
    assert capsys.readouterr().err.startswith("rlship evaluate: error: episodes must be at most 10,000")


OUT_FLAGS = [
    ["train", "dqn", "CartPole-v1"],
    ["sweep", "dqn", "CartPole-v1", "--seeds", "0"],
    ["package", "default"],
    ["push", "default", "--repo-id", "me/policy"],
    ["export", "default", "--format", "onnx"],
]


@pytest.mark.parametrize("argv", OUT_FLAGS, ids=[a[0] for a in OUT_FLAGS])
@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_out_is_refused_not_taken_for_the_current_folder(
    argv: list[str], empty: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out "$DIR"` with DIR unset: Path("") is the current folder, which would get the run's files."""
    from rlship.cli import build_parser

    parser = build_parser(argv[0])
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*argv, "--out", empty])
    assert exit_info.value.code == 2
    assert "argument --out: an empty path; name the folder to write" in capsys.readouterr().err
    assert parser.parse_args([*argv, "--out", "runs/x"]).out == "runs/x"
