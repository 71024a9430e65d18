"""The stop rule: a confirming evaluation (the protocol's greedy episodes, on its own seeds; played through the env's
native vector implementation where it has one) is run only once the training returns reach the threshold, and it
must clear the threshold by `std_errors` standard errors of its mean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rlship import load_policy
from rlship.evaluation import EvalResult, evaluate
from rlship.training import ALGORITHMS
from rlship.training.run import Run
from rlship.training.stop_rule import CONFIRM_EVAL_SEED, SCREEN_EPISODES, EpisodeStats, StopRule, joined


def result(returns: list[float]) -> EvalResult:
    return EvalResult(
        "CartPole-v1",
        float(np.mean(returns)),
        float(np.std(returns)),
        len(returns),
        True,
        0,
        list(range(len(returns))),
        returns,
        [int(r) for r in returns],
        0.0,
        "",
    )


def test_margin_in_standard_errors_of_the_confirming_mean() -> None:
    shaky = result([500.0] * 95 + [100.0] * 5)  # mean 480, std 87.2: standard error 8.72
    assert shaky.mean_reward == 480.0
    assert StopRule(475.0, 100, std_errors=0.0).passes(shaky)  # the bare mean passes
    assert not StopRule(475.0, 100, std_errors=2.0).passes(shaky)  # 480 - 17.4 is short of 475
    assert StopRule(475.0, 100, std_errors=0.5).passes(shaky)  # 480 - 4.4 clears it
    steady = result([500.0] * 100)  # no spread: the margin is zero
    assert StopRule(475.0, 100, std_errors=10.0).passes(steady)
    assert not StopRule(475.0, 100, std_errors=0.0).passes(result([474.0] * 100))
    # the same returns over fewer episodes are a less certain mean: a wider margin
    few = result([500.0] * 19 + [100.0])  # mean 480 over 20 episodes: standard error 19.5
    assert StopRule(475.0, 20, std_errors=0.5).passes(shaky) and not StopRule(475.0, 20, std_errors=0.5).passes(few)


def test_solved_confirms_on_its_own_seeds_only_after_the_training_returns_reach_the_threshold() -> None:
    policy = load_policy("default")  # the shipped CartPole-v1 policy: 500 on every episode
    rule = StopRule(475.0, episodes=10, std_errors=2.0)
    stats = EpisodeStats(num_envs=1, window=3)
    for ret in (500.0, 500.0):
        stats.update(np.array([ret]), np.array([True]), np.array([True]))
    assert not rule.solved(stats, policy) and rule.confirmations == []  # the window is not full yet
    stats.update(np.array([400.0]), np.array([True]), np.array([True]))
    assert not rule.solved(stats, policy) and rule.confirmations == []  # mean 466.7: no evaluation
    for _ in range(3):  # until the 400 leaves the window
        assert not rule.solved(stats, policy) and rule.confirmations == []
        stats.update(np.array([500.0]), np.array([True]), np.array([True]))
    assert rule.solved(stats, policy)  # 500 over the window: one confirmation, and it passes
    [confirmation] = rule.confirmations
    assert confirmation.n_eval_episodes == 10 and confirmation.seed == CONFIRM_EVAL_SEED
    assert confirmation.mean_reward == 500.0 and confirmation.deterministic
    assert StopRule(None).solved(stats, policy) is False  # an env without a threshold never stops early


def full_window() -> EpisodeStats:
    stats = EpisodeStats(num_envs=1, window=2)
    for _ in range(2):
        stats.update(np.array([500.0]), np.array([True]), np.array([True]))
    return stats


def test_a_confirmation_plays_all_its_episodes_only_after_the_first_ones_reach_the_threshold() -> None:
    good = load_policy("default")
    rule = StopRule(475.0, episodes=100, std_errors=2.0)
    assert rule.solved(full_window(), good)
    assert rule.confirmations[0].n_eval_episodes == 100  # 20 screening episodes, then the other 80
    shaky = load_policy("default")
    torch.manual_seed(0)
    with torch.no_grad():  # a policy that drops the pole early: it fails the screen
        for weight in shaky.network.parameters():
            weight.add_(0.3 * torch.randn_like(weight))
    rule = StopRule(475.0, episodes=100, std_errors=2.0, keep_best=True)  # keep_best: every screen played out
    assert not rule.solved(full_window(), shaky)
    [screened] = rule.confirmations
    assert screened.n_eval_episodes == SCREEN_EPISODES and screened.mean_reward < 475
    # CartPole's confirmations play its native vector env (the screen is exactly that evaluation)...
    assert (
        screened.episode_returns
        == evaluate(shaky, SCREEN_EPISODES, CONFIRM_EVAL_SEED, vector_twin=True).episode_returns
    )
    # ... and, without keep_best, give up once the screen's mean cannot reach 475: the same decision, fewer steps
    rule = StopRule(475.0, episodes=100, std_errors=2.0)
    assert not rule.solved(full_window(), shaky)
    [given_up] = rule.confirmations
    assert 0 < given_up.n_eval_episodes < SCREEN_EPISODES and given_up.mean_reward < 475
    assert sum(given_up.episode_lengths) < sum(screened.episode_lengths)
    assert all(r in screened.episode_returns for r in given_up.episode_returns)  # episodes that ended, whole
    # ... and for real envs, the screen and the rest together are exactly one evaluation of all the episodes
    screen = evaluate(shaky, episodes=SCREEN_EPISODES, seed=CONFIRM_EVAL_SEED)
    whole = evaluate(shaky, episodes=100, seed=CONFIRM_EVAL_SEED)
    parts = joined(screen, evaluate(shaky, episodes=80, seed=CONFIRM_EVAL_SEED + SCREEN_EPISODES))
    assert parts.episode_seeds == whole.episode_seeds and parts.episode_returns == whole.episode_returns
    assert (parts.mean_reward, parts.std_reward, parts.n_eval_episodes) == (
        whole.mean_reward,
        whole.std_reward,
        100,
    )


def test_keep_best_puts_back_the_best_confirmed_policy_when_the_last_one_is_worse(tmp_path: Path) -> None:
    algo = ALGORITHMS["dqn"]
    config = algo.make_config("CartPole-v1", keep_best=True, total_steps=2_000)
    run = Run(algo, "CartPole-v1", config, 0, tmp_path / "run", False, None, None, False)
    assert run.stop.keep_best and run.stop.best is None
    good, last = load_policy("default"), load_policy("default")  # the shipped policy: 500 on every episode
    with torch.no_grad():  # the last policy of a run that got worse: it drops the pole
        for weight in last.network.parameters():
            weight.add_(0.3 * torch.randn_like(weight, generator=torch.Generator().manual_seed(0)))
    run.stop.episodes = 10
    assert run.stop.solved(full_window(), good)  # one confirmation: 500, remembered as the best
    assert run.stop.best is not None and run.stop.best.mean_reward == 500.0
    # a checkpoint round trip keeps the best weights and its evaluation
    tensors, meta = run.stop.checkpoint_state()
    restored = StopRule(475.0, keep_best=True)
    restored.load_checkpoint_state(tensors, json.loads(json.dumps(meta)))
    assert restored.best == run.stop.best and restored.best_weights.keys() == good.network.state_dict().keys()

    kept = run._keep_best(last)
    assert kept is not None and kept["kept"] == "best" and kept["last_mean_reward"] < 475
    assert kept["last_seed"] == CONFIRM_EVAL_SEED + 1  # its own episodes, after the confirmation's
    for name, value in last.network.state_dict().items():
        assert torch.equal(value, good.network.state_dict()[name])
    assert run._keep_best(good) is not None  # a last policy as good as the best stays (nothing to put back)
    assert run._keep_best(good)["kept"] == "last"  # type: ignore[index]
    off = Run(algo, "CartPole-v1", algo.make_config("CartPole-v1"), 0, tmp_path / "off", False, None, None, False)
    assert off._keep_best(last) is None  # off by default: a run keeps its last policy


def test_keep_best_compares_whole_evaluations_only_not_screens() -> None:
    """The best of many 20-episode screens overstates its policy (pixel CartPole, tuning seed 1: a 473 screen kept
    over a last policy's 442 on 100 episodes scored 436 on the real env): only whole evaluations are kept."""
    good, other = load_policy("default"), load_policy("default")
    rule = StopRule(475.0, episodes=100, std_errors=2.0, keep_best=True)
    rule.remember(result([500.0] * SCREEN_EPISODES), good)  # a perfect screen, stopped there
    assert rule.best is None and rule.best_weights == {}
    rule.remember(result([440.0] * 100), other)  # a whole evaluation, however much lower
    assert rule.best is not None and rule.best.mean_reward == 440.0
    rule.remember(result([500.0] * SCREEN_EPISODES), good)
    assert rule.best.mean_reward == 440.0
    rule.remember(result([460.0] * 100), good)
    assert rule.best.mean_reward == 460.0


def test_confirm_from_looks_at_the_greedy_policy_before_the_training_returns_reach_the_threshold() -> None:
    policy = load_policy("default")  # greedy: 500 on every episode, whatever the training returns say
    stats = EpisodeStats(num_envs=1, window=2)
    for _ in range(2):
        stats.update(np.array([300.0]), np.array([True]), np.array([True]))
    plain = StopRule(475.0, episodes=20, std_errors=2.0)
    assert not plain.solved(stats, policy) and plain.confirmations == []  # 300 < 475: no look
    early = StopRule(475.0, episodes=20, std_errors=2.0, confirm_from=250.0)
    assert early.solved(stats, policy) and len(early.confirmations) == 1  # 300 >= 250: the confirmation decides
    later = StopRule(475.0, episodes=20, std_errors=2.0, confirm_from=350.0)
    assert not later.solved(stats, policy) and later.confirmations == []


def test_stop_on_solve_off_trains_the_whole_budget_however_good_the_policy(tmp_path: Path) -> None:
    algo = ALGORITHMS["ppo"]
    policy = load_policy("default")  # 500 on every episode: the rule would confirm it at once
    on = Run(algo, "CartPole-v1", algo.make_config("CartPole-v1"), 0, tmp_path / "on", False, None, None, False)
    assert on.stop.solved(full_window(), policy)
    config = algo.make_config("CartPole-v1", stop_on_solve=False)
    off = Run(algo, "CartPole-v1", config, 0, tmp_path / "off", False, None, None, False)
    assert not off.stop.solved(full_window(), policy) and off.stop.confirmations == []  # no confirmation is paid for
    assert off.threshold == 475.0  # results.json still judges the final evaluation against the env's threshold
    # a whole (tiny) run: it plays its budget through and reports the env's threshold
    small = algo.make_config("CartPole-v1", stop_on_solve=False, total_steps=2_048, eval_episodes=5)
    algo.train("CartPole-v1", small, seed=0, out=tmp_path / "whole", progress=False)
    results = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert results["training"]["env_steps"] >= 2_048 and results["training"]["confirming_evaluations"] == []
    assert results["reward_threshold"] == 475.0


def window_at(env_steps: int) -> EpisodeStats:
    stats = full_window()
    stats.env_steps = env_steps
    return stats


def test_without_stopping_keep_best_confirms_at_most_every_confirm_every_env_steps() -> None:
    policy = load_policy("default")
    rule = StopRule(475.0, episodes=20, std_errors=2.0, keep_best=True, stops=False, every=1_000)
    assert not rule.solved(window_at(5_000), policy)  # it passes, and the run goes on
    assert len(rule.confirmations) == 1 and rule.best is not None and rule.best.mean_reward == 500.0
    assert not rule.solved(window_at(5_999), policy) and len(rule.confirmations) == 1  # too soon after the last
    assert not rule.solved(window_at(6_000), policy) and len(rule.confirmations) == 2
    tensors, meta = rule.checkpoint_state()  # a resumed run keeps the spacing
    restored = StopRule(475.0, episodes=20, keep_best=True, stops=False, every=1_000)
    restored.load_checkpoint_state(tensors, json.loads(json.dumps(meta)))
    assert restored.last_confirmed_at == 6_000 and not restored.solved(window_at(6_500), policy)
    assert len(restored.confirmations) == 2


def test_keep_best_puts_back_the_observation_statistics_with_the_weights(tmp_path: Path) -> None:
    algo = ALGORITHMS["ppo"]
    small = dict(normalize_obs=True, num_envs=2, n_steps=64, total_steps=128, eval_episodes=1, keep_best=True)
    trained = algo.train("Pendulum-v1", algo.make_config("Pendulum-v1", **small), seed=0, out=tmp_path / "t")
    good, last = load_policy(trained.out), load_policy(trained.out)
    assert good.obs_norm is not None and last.obs_norm is not None
    with torch.no_grad():  # the last policy: other weights, and statistics of other observations
        for weight in last.network.parameters():
            weight.add_(1.0)
    last.obs_norm.mean = last.obs_norm.mean + 5.0
    config = algo.make_config("Pendulum-v1", **small, confirm_episodes=3)
    run = Run(algo, "Pendulum-v1", config, 0, tmp_path / "run", False, None, None, False)
    run.stop.remember(result([0.0, 0.0, 0.0]), good)  # better than any Pendulum episode: the best by far
    kept = run._keep_best(last)
    assert kept is not None and kept["kept"] == "best"
    np.testing.assert_array_equal(last.obs_norm.mean, good.obs_norm.mean)
    for name, value in last.network.state_dict().items():
        assert torch.equal(value, good.network.state_dict()[name])


def test_giving_up_on_confirmations_changes_no_decision(tmp_path: Path) -> None:
    """A run whose failing confirmations give up (the default) stops where one playing them out (keep_best, which
    compares failed confirmations too) stops, with the same weights: giving up saves steps, not decisions."""
    algo = ALGORITHMS["ppo"]
    runs = {}
    for keep_best in (False, True):
        # confirming from a training mean of 50 every 2 updates, raw observations: several confirmations fail
        # before one passes
        config = algo.make_config(
            "CartPole-v1",
            confirm_from=50.0,
            confirm_every=2048,
            eval_episodes=5,
            keep_best=keep_best,
            normalize_obs=False,
        )
        out = tmp_path / f"keep_best-{keep_best}"
        algo.train("CartPole-v1", config, seed=3, out=out, progress=False)
        runs[keep_best] = (
            json.loads((out / "results.json").read_text())["training"],
            (out / "model.safetensors").read_bytes(),
        )
    (gave_up, weights), (played_out, same_weights) = runs[False], runs[True]
    assert gave_up["env_steps"] == played_out["env_steps"] and weights == same_weights
    failed = [c for c in played_out["confirming_evaluations"] if c["episodes"] < 100]
    assert len(failed) >= 2  # so that there was something to give up on
    episodes = [c["episodes"] for c in gave_up["confirming_evaluations"]]
    assert len(episodes) == len(played_out["confirming_evaluations"])
    assert sum(episodes) < sum(c["episodes"] for c in played_out["confirming_evaluations"])
