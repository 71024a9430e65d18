"""The run folder: rlship writes only into a new or empty folder or a run of its own (never deleting or
overwriting a file it did not write), a failed run leaves nothing behind, and results.json has one typed reader
that names the field a bad file gets wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rlship import ArtifactError, load_policy
from rlship.cli import main
from rlship.run_folder import Results, default_run_dir, read_results

TRAIN = ["train", "random", "CartPole-v1", "--no-progress", "--eval-episodes", "2"]


def plant_user_files(folder: Path) -> dict[str, str]:
    """Files a user keeps in a folder, rlship's own names among them: {relative path: sha256}."""
    files = {
        "notes.txt": "my notes",
        "config.json": '{"mine": true}',
        "results.json": "[1, 2, 3]",
        "model.safetensors": "not weights",
        "checkpoint/mine.bin": "precious",
        "events.out.tfevents.123": "not tensorboard",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("algo", ["random", "ppo"])
def test_train_refuses_a_folder_that_is_not_its_own_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algo: str
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    before = plant_user_files(folder)
    for extra in ([], ["--overwrite"]):
        args = ["train", algo, "CartPole-v1", "--out", str(folder), "--no-progress", "--total-steps", "100"][
            : 6 if algo == "random" else None
        ]
        assert main([*args, *extra]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not empty and not an earlier rlship" in err[0] and "notes.txt" in err[0]
        assert snapshot(folder) == before  # every byte survives


def test_out_dot_in_a_users_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = plant_user_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main([*TRAIN, "--out", "."]) == 1
    assert "not empty" in capsys.readouterr().err and snapshot(tmp_path) == before


def test_an_earlier_run_is_replaced_only_with_overwrite_and_keeps_the_users_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, "--out", str(run), "--seed", "1"]) == 0
    (run / "my-notes.txt").write_text("about this run")
    first = json.loads((run / "config.json").read_text())
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(run), "--seed", "2"]) == 1
    assert "already holds an rlship random run on CartPole-v1; pass --overwrite" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text()) == first
    assert main([*TRAIN, "--out", str(run), "--seed", "2", "--overwrite"]) == 0
    assert json.loads((run / "config.json").read_text())["seed"] == 2
    assert (run / "my-notes.txt").read_text() == "about this run"
    # a run of another algorithm is not "its own": refused even with --overwrite
    capsys.readouterr()
    assert main(["train", "cem", "CartPole-v1", "--out", str(run), "--overwrite", "--no-progress"]) == 1
    assert "not an earlier rlship cem run" in capsys.readouterr().err


@pytest.mark.parametrize("checkpoints", ["0", "inf"], ids=["with-checkpoint", "log-only"])
def test_a_run_that_ended_without_a_policy_is_replaced_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], checkpoints: str
) -> None:
    """A diverged run (or a killed one) leaves its log, maybe a checkpoint, and no config.json: it is still a run of
    rlship's, so --overwrite trains there again; a user's file beside it, or another algorithm's checkpoint, is still
    refused."""
    run = tmp_path / "run"
    train = ["train", "reinforce", "CartPole-v1", "--out", str(run), "--no-progress", "--total-steps", "3000"]
    train += ["--eval-episodes", "2", "--checkpoint-every", checkpoints]
    assert main([*train, "--learning-rate", "1e30"]) == 1
    assert "a run of the same algorithm and env may replace it (--overwrite)" in capsys.readouterr().err
    assert not (run / "config.json").exists() and (run / "train_log.csv").is_file()
    assert (run / "checkpoint" / "state.json").is_file() == (checkpoints == "0")
    assert main(train) == 1
    assert "already holds an rlship reinforce run on CartPole-v1; pass --overwrite" in capsys.readouterr().err
    if checkpoints == "0":  # the checkpoint says which algorithm and env; a log alone does not
        for refused in (["cem", "CartPole-v1"], ["reinforce", "Acrobot-v1"]):
            assert main(["train", *refused, "--out", str(run), "--overwrite", "--no-progress"]) == 1
            assert f"not an earlier rlship {refused[0]} run on {refused[1]}" in capsys.readouterr().err
    (run / "notes.txt").write_text("mine")
    assert main([*train, "--overwrite"]) == 1
    assert "not empty and not an earlier rlship" in capsys.readouterr().err
    (run / "notes.txt").unlink()
    assert main([*train, "--overwrite"]) == 0
    assert load_policy(run).spec.algorithm == "reinforce"


def test_a_log_that_is_not_rlships_does_not_make_a_folder_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "other"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "train_log.csv").write_text("step,loss\n1,0.5\n")
    before = snapshot(folder)
    assert main([*TRAIN, "--out", str(folder), "--overwrite"]) == 1
    assert "not empty and not an earlier rlship" in capsys.readouterr().err and snapshot(folder) == before
    (folder / "checkpoint" / "state.json").write_text('{"algorithm": "ppo", "env_id": "CartPole-v1"}')
    before = snapshot(folder)
    assert main([*TRAIN, "--out", str(folder), "--overwrite"]) == 1  # another algorithm's checkpoint
    assert "not empty and not an earlier rlship" in capsys.readouterr().err and snapshot(folder) == before


def test_out_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "file.txt"
    path.write_text("keep me")
    assert main([*TRAIN, "--out", str(path)]) == 1
    assert capsys.readouterr().err.strip().endswith("exists and is not a folder; pass a new folder to --out")
    assert path.read_text() == "keep me"


def test_a_run_that_fails_at_setup_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--env-kwargs", '{"no_such_option": 1}']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not take --env-kwargs" in err[0]
    assert not out.exists()
    assert main([*TRAIN, "--out", str(out), "--env-kwargs", "[1]"]) == 1
    assert "--env-kwargs must be a JSON object" in capsys.readouterr().err and not out.exists()


def test_a_network_too_large_is_refused_before_it_is_allocated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "ppo", "CartPole-v1", "--out", str(out), "--no-progress", "--hidden-sizes", "60000", "60000"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "parameters, more than rlship builds" in err[0] and not out.exists()
    assert main([*args[:-2], "1000000000"]) == 1
    assert "hidden_sizes must be in [1, 65536]; got [1000000000]" in capsys.readouterr().err


def test_the_default_run_path_is_one_folder_per_run() -> None:
    assert default_run_dir("ppo", "CartPole-v1", 3) == Path("runs/ppo-CartPole-v1-s3")
    assert default_run_dir("ppo", "rlship/Pixelcopter-v0", 0) == Path("runs/ppo-rlship-Pixelcopter-v0-s0")


def test_results_json_is_read_by_one_typed_reader(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    results = read_results(run)
    assert isinstance(results, Results) and results.evaluation.n_eval_episodes == 2 and not results.interrupted
    assert Results.from_dict(results.to_dict()) == results
    data = json.loads((run / "results.json").read_text())
    for field, bad in (("mean_reward", "x"), ("interrupted", "yes"), ("episode_returns", ["a"]), ("solved", None)):
        (run / "results.json").write_text(json.dumps({**data, field: bad}))
        with pytest.raises(ArtifactError, match=rf"results.json: field '{field[:8]}"):
            load_policy(run)  # checked at load, so a server refuses it at start, not in its workers
    legacy = {**data, "training_interrupted": True}
    del legacy["interrupted"]
    (run / "results.json").write_text(json.dumps(legacy))  # packages made before the one key
    assert read_results(run).interrupted is True  # type: ignore[union-attr]
