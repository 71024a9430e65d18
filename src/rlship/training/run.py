"""One training run's ceremony, written once: `Run` (the run folder, seeds, envs, episode stats, the stop rule,
the log, checkpoints, Ctrl-C, the final evaluation and artifact), which `Algorithm.train` (training/algorithm.py)
starts around an algorithm's `learn` loop.

An algorithm's `learn(run, cfg)` holds only its loop and its maths:

    def learn(run: Run, cfg: MyConfig) -> None:
        envs = run.vec_env(cfg.num_envs)
        policy = run.new_policy(envs, NetworkSpec(cfg.hidden_sizes, cfg.activation, {"logits": run.n_actions(envs)}))
        optimizer = torch.optim.Adam(policy.network.parameters(), lr=cfg.learning_rate)
        run.start(["loss"], envs.num_envs, network=policy.network, optimizer=optimizer)
        obs, _ = envs.reset(seed=run.env_seed)
        while run.env_steps < cfg.total_steps:
            ... collect with run.generator / run.rng, counting steps and episodes in run.stats, update ...
            if run.update(loss=loss.item()):   # log + stop rule + checkpoint; True: stop now
                break

and everything else (folder rules, seeding, resume, Ctrl-C, closing envs and log, the artifact) happens around it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import multiprocessing
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from rlship.envs import env_spec, has_vector_twin, make_vec_env, require_discrete_actions
from rlship.errors import ArtifactError, TrainingDiverged, UsageError
from rlship.evaluation import EvalResult, evaluate
from rlship.networks import NetworkSpec
from rlship.policy import FORMAT_VERSIONS, Policy, new_policy
from rlship.run_folder import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CURVE_FILE,
    LOG_FILE,
    RUN_FILES,
    TENSORBOARD_GLOB,
    WEIGHTS_FILE,
    OutputRule,
    Results,
    check_output_folder,
    default_run_dir,
    read_config,
    read_json,
    run_finished,
    write_results,
)
from rlship.training.checkpoint import STATE_FILE, Checkpointer, CheckpointError, CheckpointOptions
from rlship.training.no_dynamo import skip_dynamo_wrappers
from rlship.training.settings import RunSettings, Settings, field_default
from rlship.training.stop_rule import CONFIRM_EVAL_SEED, EpisodeStats, StopRule
from rlship.training.train_log import TrainLog

if TYPE_CHECKING:
    from rlship.training.algorithm import Algorithm
    from rlship.training.curve import CurvePlot

# An interrupted run (Ctrl-C) still writes its artifact, evaluated on this many episodes so the stop stays quick;
# results.json says so ("interrupted": true, "solved": false): it is not the protocol's 100-episode score.
INTERRUPTED_EVAL_EPISODES = 10
_RUN_DEFAULTS = RunSettings.__dataclass_fields__


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns: the trained policy, where it was written and how the run went."""

    policy: Policy
    out: Path
    evaluation: EvalResult
    reward_threshold: float | None
    solved: bool
    env_steps: int
    train_seconds: float  # from the first env step until training stopped (confirming evaluations included)
    confirmations: int  # confirming evaluations the stop rule ran
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM: the evaluation is short and the run can be resumed
    updates: int = 0  # 0 for a run that learns nothing (the random baseline)
    stop_signal: int | None = None  # the signal that interrupted it (SIGINT or SIGTERM), for the exit status

    def summary(self) -> dict[str, Any]:
        return {
            "env_id": self.evaluation.env_id,
            "algorithm": self.policy.spec.algorithm,
            "solved": self.solved,
            "reward_threshold": self.reward_threshold,
            "env_steps": self.env_steps,
            "train_seconds": round(self.train_seconds, 3),
            "confirmations": self.confirmations,
            "interrupted": self.interrupted,
            "mean_reward": self.evaluation.mean_reward,
            "std_reward": self.evaluation.std_reward,
            "out": str(self.out),
        }


def _run_rule(algorithm: str, env_id: str) -> OutputRule:
    """A run folder is "ours" when its config.json says it is an rlship run of this algorithm on this env, or when
    it is such a run that ended before writing its policy (`_unfinished_run`)."""

    def is_own(folder: Path) -> bool:
        if not (folder / CONFIG_FILE).exists():
            return _unfinished_run(folder, algorithm, env_id)
        try:
            config = read_config(folder)
        except ArtifactError:
            return False
        version, kind = config.get("format_version"), (config.get("algorithm"), config.get("env_id"))
        return type(version) is int and version in FORMAT_VERSIONS and kind == (algorithm, env_id)

    return OutputRule(
        f"{algorithm} run on {env_id}", is_own, flag="--overwrite", extra_hint=" (or --resume it if it was stopped)"
    )


def _unfinished_run(folder: Path, algorithm: str, env_id: str) -> bool:
    """Whether `folder` holds what a run of `algorithm` on `env_id` leaves when it ends before writing its policy (it
    diverged, or its process was killed): only names a run writes, no policy, and either a checkpoint of this
    algorithm on this env or, before the first checkpoint, rlship's training log (which does not say its algorithm
    or env: any run's log-only folder passes). So `--overwrite` (and a sweep run again) can train there again,
    removing only those names; without a policy there is nothing of value a mistyped command could replace."""
    names = [path.name for path in folder.iterdir()]
    run_names = {*RUN_FILES, CHECKPOINT_DIR}
    if WEIGHTS_FILE in names or not all(n in run_names or fnmatch.fnmatch(n, TENSORBOARD_GLOB) for n in names):
        return False
    state = folder / CHECKPOINT_DIR / STATE_FILE
    if state.is_file():
        try:
            saved = read_json(state)
        except ArtifactError:
            return False
        return (saved.get("algorithm"), saved.get("env_id")) == (algorithm, env_id)
    try:
        with (folder / LOG_FILE).open(encoding="utf-8") as log:
            return log.readline(100).startswith(TrainLog.HEADER_START)
    except (OSError, UnicodeDecodeError):
        return False


class Run:
    """One training run. `Algorithm.train` makes one, calls the algorithm's `learn(run, cfg)` inside it, then
    `finish()`. See the module docstring for what an algorithm calls."""

    def __init__(
        self,
        algorithm: Algorithm[Any],
        env_id: str,
        cfg: Settings,
        seed: int,
        out: str | Path | None,
        progress: bool,
        env_kwargs: dict[str, Any] | None,
        checkpoint: CheckpointOptions | None,
        overwrite: bool,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise UsageError(f"seed must be a whole number in [0, 2**32); got {seed!r}")
        self.algorithm = algorithm
        skip_dynamo_wrappers()  # before `learn` makes its optimizer: torch._dynamo's import is seconds, unused here
        self.env_id = env_id
        self.cfg = cfg
        self.seed = seed
        self.env_kwargs = dict(env_kwargs or {})
        self.progress = progress
        self.options = checkpoint or CheckpointOptions()
        self.out = Path(out) if out is not None else default_run_dir(algorithm.name, env_id, seed)
        self.threshold = env_spec(env_id).reward_threshold  # an unknown env fails here, before any folder exists
        self._setting = lambda name: getattr(cfg, name, _RUN_DEFAULTS[name].default)
        # The folder: new, empty, or a run of this kind to --resume or --overwrite; checked before anything else.
        self._replacing = False  # True: an earlier run of this kind is replaced (--overwrite)
        if self.options.resume:
            if overwrite:
                raise UsageError("--resume continues a run and --overwrite replaces one; pass only one of them")
            if run_finished(self.out):
                raise CheckpointError(
                    f"{self.out}: that run finished (see its results.json); there is nothing to resume. "
                    "Start a new run with another --out"
                )
        else:
            self._replacing = check_output_folder(self.out, _run_rule(algorithm.name, env_id), replace=overwrite)
        # Checks a resume (algorithm, env, seed, every hyperparameter, tensor checksum) before anything is written.
        self.checkpointer = Checkpointer(
            self.out,
            algorithm.name,
            env_id,
            seed,
            asdict(cfg),
            self.env_kwargs,
            resume=self.options.resume,
            defaults={f.name: field_default(f) for f in fields(cfg)},
        )
        self._created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        # Seeds, all here: torch's global RNG (network initialisation), the NumPy generator (minibatch order,
        # exploration), the action-sampling generator; the envs' seed is `env_seed`.
        torch.set_num_threads(self._setting("torch_threads"))
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.env_seed = self.checkpointer.env_seed  # the run's seed; on resume one derived from the checkpoint
        self.policy: Policy | None = None
        self.stats: EpisodeStats | None = None
        self.stop = StopRule(
            self.threshold,
            self._setting("confirm_episodes"),
            self._setting("confirm_std_errors"),
            self._setting("confirm_from"),
            keep_best=self._setting("keep_best"),
            stops=self._setting("stop_on_solve"),
            every=self._setting("confirm_every"),
        )
        self.stopped_solved = False  # the stop rule ended training
        self.log: TrainLog | None = None
        self.curve: CurvePlot | None = None  # the curve's child process, started with training (Run.start)
        self.updates = 0
        self.interrupted = False
        self._stop_requested = False
        self.stop_signal: int | None = None  # the signal that asked for the stop
        self._envs: list[gym.vector.VectorEnv] = []

    # --- what an algorithm calls

    def vec_env(self, num_envs: int) -> gym.vector.VectorEnv:
        """The run's env as a vector env of `num_envs` copies (closed when the run ends)."""
        envs = make_vec_env(self.env_id, num_envs, self.env_kwargs)
        self._envs.append(envs)
        return envs

    def n_actions(self, envs: gym.vector.VectorEnv) -> int:
        """The number of actions of a Discrete action space, or a clear error naming this algorithm."""
        return require_discrete_actions(self.env_id, envs.single_action_space, self.algorithm.name)

    def new_policy(
        self,
        envs: gym.vector.VectorEnv,
        network: NetworkSpec,
        action_distribution: str = "softmax",
        epsilon: float = 0.0,
        **artifact: Any,
    ) -> Policy:
        """The policy this run trains and writes (config.json records the algorithm, env, seed, hyperparameters).
        `artifact`: what else `rlship.policy.new_policy` takes (a Gaussian's log_std and bound, normalize_obs,
        reward_scaling)."""
        self.policy = new_policy(
            self.algorithm.name,
            self.env_id,
            envs.single_observation_space,
            envs.single_action_space,
            network,
            hyperparameters=asdict(self.cfg),
            seed=self.seed,
            env_kwargs=self.env_kwargs,
            action_distribution=action_distribution,
            epsilon=epsilon,
            algorithm_summary=self.algorithm.summary,
            # an image env says how its observations are made from rendered frames (rlship.frames)
            frames=envs.metadata.get("observation_preprocessing"),
            **artifact,
        )
        return self.policy

    def start(self, log_fields: Sequence[str], num_envs: int, **objects: Any) -> dict[str, Any]:
        """Start the clock: the episode stats of `num_envs` envs, the log with the algorithm's columns, and the
        checkpoint of `objects` (networks, optimizers, buffers, by name) together with the run's RNGs, stats, stop
        rule and log. When resuming, restores them all and returns the saved counters; on a fresh run {}."""
        self.stats = EpisodeStats(num_envs, self._setting("solve_window"))
        if self.curve is None:  # its child imports matplotlib while the run trains (training/curve.py)
            from rlship.training.curve import CurvePlot

            self.curve = CurvePlot()
        self.log = TrainLog(
            self.out,
            int(getattr(self.cfg, "total_steps", 0)),
            log_fields,
            self.progress,
            desc=f"{self.algorithm.name} {self.env_id} s{self.seed}",
        )
        if not self.options.resume:
            self._clear_replaced_run()
        counters = self.checkpointer.track(
            **objects,
            rng=self.rng,
            generator=self.generator,
            stats=self.stats,
            stop=self.stop,
            log=self.log,
        )
        self.updates = int(counters.get("updates", 0))
        return counters

    @property
    def env_steps(self) -> int:
        """Env steps played so far (valid transitions, counted by `stats.update`; restored on resume)."""
        return self.stats.env_steps if self.stats is not None else 0

    def update(self, counters: dict[str, Any] | None = None, check_stop: bool = True, **metrics: float) -> bool:
        """After each update: log a row (`metrics` are the algorithm's columns), check the stop rule (when
        `check_stop`), write a checkpoint when one is due or Ctrl-C asked for one. True: stop training now.
        `counters` are the algorithm's own JSON counters a resume needs (env steps and updates are kept here)."""
        assert self.log is not None and self.stats is not None and self.policy is not None, "call run.start first"
        env_steps = self.stats.env_steps
        self.log.log(env_steps, self.stats, **metrics)  # logged first: a diverged row shows which number broke
        self.updates += 1
        self._check_finite(metrics)
        if check_stop and self.stop.solved(self.stats, self.policy):
            self.stopped_solved = True
            return True
        counters = {"env_steps": env_steps, "updates": self.updates, **(counters or {})}
        if self._stop_requested:
            self._check_weights()
            self.checkpointer.save(**counters)
            self.interrupted = True
            return True
        every = self.options.every_seconds
        if every == 0 or (math.isfinite(every) and self.checkpointer.seconds_since_save() >= every):
            self._check_weights()  # a checkpoint never holds weights that are not finite
            self.checkpointer.save(**counters)
        return False

    def _check_finite(self, metrics: dict[str, float]) -> None:
        """TrainingDiverged when this update's losses (its metrics, already Python numbers: no cost) are not finite.

        Where a diverged network shows first, at no cost per step: a loss of the update that broke it (an update of
        several gradient steps, and dqn's, whose greedy actions never fail) or the next update's; its outputs when
        actions are sampled from them (distributions.sample_categorical, GaussianHead.to_env). The weights
        themselves are checked only before they are written (a checkpoint, the artifact): at every update the check
        (about 125 us on a 128x128 MLP) would add some 3% to a learning round of dqn's CartPole preset (four 1 ms
        gradient steps), which may log after every round."""
        bad = [f"{name}={value}" for name, value in metrics.items() if not math.isfinite(value)]
        if bad:
            raise TrainingDiverged(f"a non-finite loss: {', '.join(bad)}")

    def _check_weights(self) -> None:
        """TrainingDiverged when a weight of the policy's network is not finite (before a checkpoint or the artifact
        is written)."""
        finite = [p.isfinite().all() for p in (self.policy.network.parameters() if self.policy is not None else [])]
        if finite and not bool(torch.stack(finite).all()):
            raise TrainingDiverged("non-finite network weights")

    def _diverged(self, cause: str) -> TrainingDiverged:
        """The one-line error of a diverged run: where, why, which flags to lower, what the run folder keeps."""
        flags = " or ".join(
            f"--{name.replace('_', '-')} (now {getattr(self.cfg, name):g})"
            for name in ("learning_rate", "max_grad_norm")
            if hasattr(self.cfg, name)
        )
        kept = ", ".join(name for name in (LOG_FILE, f"{CHECKPOINT_DIR}/") if (self.out / name).exists())
        return TrainingDiverged(
            f"training diverged at env step {self.env_steps:,} ({cause}); lower {flags or 'the step size'} and train "
            f"again. {self.out} keeps what this run wrote up to there ({kept or 'nothing'}) and no policy; a run "
            "of the same algorithm and env may replace it (--overwrite)"
        )

    def request_stop(self) -> None:
        """Ask the loop to stop at its next update (what the first Ctrl-C does; callable from another thread)."""
        self._stop_requested = True

    # --- the ceremony around `learn`

    @contextlib.contextmanager
    def running(self) -> Iterator[Run]:
        """While inside: Ctrl-C asks for a clean stop at the next update; on the way out the envs and the log are
        closed, and a run that failed before writing anything leaves no folder behind."""
        try:
            with self._interruptible():
                yield self
        except BaseException as exc:
            self._close()
            if self.curve is not None:
                self.curve.cancel()
            if self._created and self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()  # a run that failed at setup (bad env kwargs, a network too large) leaves nothing
            if isinstance(exc, TrainingDiverged):  # raised saying what; said here with where and what to do
                raise self._diverged(str(exc)) from None
            raise
        self._close()

    def _close(self) -> None:
        for envs in self._envs:
            envs.close()
        self._envs.clear()
        if self.log is not None:
            self.log.close()

    def _clear_replaced_run(self) -> None:
        """--overwrite of an earlier run of the same kind: remove the files that run wrote (only names rlship
        writes; anything else in the folder stays). Done when training starts, so a failed setup deletes nothing."""
        if not self._replacing:
            return
        for name in RUN_FILES:
            (self.out / name).unlink(missing_ok=True)
        for path in self.out.glob(TENSORBOARD_GLOB):
            path.unlink()
        checkpoint = self.out / CHECKPOINT_DIR
        if checkpoint.is_dir():
            (checkpoint / STATE_FILE).unlink(missing_ok=True)
            for path in checkpoint.glob("tensors-*.safetensors"):
                path.unlink()
            with contextlib.suppress(OSError):
                checkpoint.rmdir()  # only when nothing else is in it

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """The first SIGINT (Ctrl-C) or SIGTERM (what `docker stop`, Kubernetes and job schedulers send before they
        kill) asks for a clean stop at the next update (checkpoint + artifact), a second raises KeyboardInterrupt at
        once. Outside the main thread signals cannot be caught: `request_stop` is the way. A sweep's pool worker
        keeps SIGTERM's default: the pool ends its workers with it, and one that trained on would never be
        collected."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = [signal.SIGINT]
        if multiprocessing.parent_process() is None:
            signals.append(signal.SIGTERM)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stop_requested:
                for sig in signals:
                    signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
                raise KeyboardInterrupt
            self.stop_signal = signum
            self.request_stop()
            again = "Ctrl-C again" if signum == signal.SIGINT else "another SIGTERM"
            print(
                f"\nrlship: {'' if signum == signal.SIGINT else 'SIGTERM: '}stopping at the end of this update to "
                f"write a checkpoint and the artifact ({again} to abort at once)",
                file=sys.stderr,
                flush=True,
            )

        previous = {sig: signal.signal(sig, on_signal) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _keep_best(self, policy: Policy) -> dict[str, Any] | None:
        """With the stop rule's `keep_best`, at the end of a run that did not stop solved: evaluate the last policy
        as a confirmation would (its own seeds, the env's vector twin) and, when the best confirmation scored
        higher, put that policy's weights back. Returns what was compared and which was kept (for results.json)."""
        stop = self.stop
        if not stop.keep_best or stop.best is None:
            return None
        seed = CONFIRM_EVAL_SEED + len(stop.confirmations)
        last = evaluate(policy, episodes=stop.episodes, seed=seed, vector_twin=True)
        keep = stop.best.mean_reward > last.mean_reward
        if keep:
            policy.load_state_tensors(stop.best_weights, "the best confirmed policy")
        return {
            "kept": "best" if keep else "last",
            "best_confirmation": stop.confirmations.index(stop.best) if stop.best in stop.confirmations else None,
            "best_mean_reward": stop.best.mean_reward,
            "last_mean_reward": last.mean_reward,
            "last_episodes": last.n_eval_episodes,
            "last_seed": seed,
        }

    def finish(self) -> TrainResult:
        """Evaluate by the protocol and write the artifact: weights, config, results, curve.

        A run stopped by Ctrl-C writes the same artifact, evaluated on a few episodes only and marked interrupted
        in results.json, so it can be loaded and looked at, then resumed."""
        try:
            return self._finish()
        except BaseException as exc:
            if self.curve is not None:
                self.curve.cancel()  # a child still waiting for its job (no-op once it has it)
            if isinstance(exc, TrainingDiverged):  # the last update's weights: said with where and what to do
                raise self._diverged(str(exc)) from None
            raise

    def _finish(self) -> TrainResult:
        if self.policy is None:
            raise RuntimeError(f"{self.algorithm.name}'s learn() made no policy (call run.new_policy)")
        if self.log is None:  # a run with no updates (the random baseline): an empty log, no clock
            self.log = TrainLog(self.out, 0, [], progress=False, desc="")
            self.log.close()
        train_seconds = self.log.elapsed() if self.updates else 0.0
        self._check_weights()  # no artifact of a diverged network
        policy, interrupted = self.policy, self.interrupted
        kept = None if interrupted or self.stopped_solved else self._keep_best(policy)
        policy.save(self.out)
        eval_episodes = self._setting("eval_episodes")
        episodes = min(eval_episodes, INTERRUPTED_EVAL_EPISODES) if interrupted else eval_episodes
        from rlship.training.curve import CurvePlot, plot_training_curve

        title = f"{policy.spec.algorithm} on {policy.spec.env_id}" + (" (interrupted)" if interrupted else "")
        curve_path = self.out / CURVE_FILE
        # drawn while the policy is evaluated (a run without log rows shows its evaluation: drawn after it)
        plot = None
        if self.log.rows:  # drawn by the child while the policy is evaluated
            plot = self.curve if self.curve is not None else CurvePlot()
            plot.draw(self.log.rows, curve_path, title, self.threshold)
        elif self.curve is not None:  # no update was made: drawn here after the evaluation, showing its mean
            self.curve.cancel()
        evaluation = evaluate(policy, episodes=episodes, seed=0)
        solved = not interrupted and self.threshold is not None and evaluation.mean_reward >= self.threshold
        training: dict[str, Any] = {
            "env_steps": self.env_steps,
            "train_seconds": round(train_seconds, 3),
            "confirming_evaluations": [
                {
                    "mean_reward": c.mean_reward,
                    "std_reward": c.std_reward,
                    "episodes": c.n_eval_episodes,
                    "seed": c.seed,
                }
                for c in self.stop.confirmations
            ],
            # what the confirming episodes played (evaluation.py): the env's native vector implementation, or
            # gymnasium.make copies like the final evaluation
            "confirming_env": "vector_entry_point" if has_vector_twin(self.env_id) else "gymnasium.make",
            "resumed_at_env_steps": list(self.checkpointer.resumed_at),
        }
        if kept is not None:
            training["kept_best"] = kept
        note = None
        if interrupted:
            note = (
                f"training was interrupted at {self.env_steps} env steps; this is a short evaluation ({episodes} "
                "episodes), not the final one. Resume the run to finish it"
            )
        write_results(self.out, Results(evaluation, self.threshold, solved, interrupted, training, note))
        if plot is not None:
            plot.finish()
        else:
            plot_training_curve([], curve_path, title, self.threshold, evaluation=evaluation.mean_reward)
        return TrainResult(
            policy,
            self.out,
            evaluation,
            self.threshold,
            solved,
            self.env_steps,
            train_seconds,
            len(self.stop.confirmations),
            interrupted,
            self.updates,
            self.stop_signal,
        )
