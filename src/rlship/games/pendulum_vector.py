"""A NumPy vector twin of Gymnasium's Pendulum-v1: N pendulums stepped in one NumPy call.

Gymnasium registers no `vector_entry_point` for Pendulum-v1, so training would step it as a `SyncVectorEnv` of
wrapped Python envs, the largest single cost of a Pendulum run (issue 13). This class holds exactly
`gymnasium.envs.classic_control.pendulum.PendulumEnv`'s dynamics, reward and reset distribution, the spec's
time limit as truncation, and Gymnasium 1.x's next-step autoreset as `CartPoleVectorEnv` has it (the step after
an episode ends resets that copy, with reward 0 and neither flag set). rlship's envs.py uses it for training
rollouts and the stop rule's confirmations only; evaluation plays the real env. No rendering.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.envs.classic_control import utils
from gymnasium.envs.classic_control.pendulum import DEFAULT_X, DEFAULT_Y, angle_normalize
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class PendulumVectorEnv(VectorEnv[npt.NDArray[np.float32], npt.NDArray[np.floating[Any]], npt.NDArray[Any]]):
    """`num_envs` Pendulum-v1 copies; the state is (theta, theta_dot) x num_envs in float64, as PendulumEnv's."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self, num_envs: int = 1, max_episode_steps: int = 200, render_mode: str | None = None, g: float = 10.0
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"rlship's Pendulum vector twin does not render (render_mode={render_mode!r})")
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = None
        # PendulumEnv's constants
        self.max_speed = 8
        self.max_torque = 2.0
        self.dt = 0.05
        self.g = g
        self.m = 1.0
        self.l = 1.0

        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.single_action_space = spaces.Box(-self.max_torque, self.max_torque, shape=(1,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self.reset_high = np.array([[DEFAULT_X], [DEFAULT_Y]])
        self.state: npt.NDArray[np.float64] | None = None
        self.steps = np.zeros(num_envs, dtype=np.int32)
        self.prev_done = np.zeros(num_envs, dtype=np.bool_)

    def step(
        self, actions: npt.NDArray[np.floating[Any]]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict]:
        if self.state is None:
            raise RuntimeError("call reset before step")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, 1):
            raise ValueError(f"actions must have shape ({self.num_envs}, 1), got {actions.shape}")
        th, thdot = self.state
        g, m, length, dt = self.g, self.m, self.l, self.dt

        # PendulumEnv.step term for term (the same float64/float32 promotions, so the same numbers)
        u = np.clip(actions[:, 0], -self.max_torque, self.max_torque)
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * g / (2 * length) * np.sin(th) + 3.0 / (m * length**2) * u) * dt
        newthdot = np.clip(newthdot, -self.max_speed, self.max_speed)
        newth = th + newthdot * dt
        self.state = np.stack((newth, newthdot))
        reward = -costs

        self.steps += 1
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        truncated = self.steps >= self.max_episode_steps

        # next-step autoreset: the copies whose episode ended on the last step start a new one instead
        done = self.prev_done
        if done.any():
            self.state[:, done] = self.np_random.uniform(
                low=-self.reset_high, high=self.reset_high, size=(2, int(done.sum()))
            )
            self.steps[done] = 0
            reward[done] = 0.0
            truncated[done] = False
        self.prev_done = terminated | truncated
        return self._observations(), reward, terminated, truncated, {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        x, y = DEFAULT_X, DEFAULT_Y
        if options is not None:  # PendulumEnv's reset bounds
            x = utils.verify_number_and_cast(options.get("x_init", DEFAULT_X))
            y = utils.verify_number_and_cast(options.get("y_init", DEFAULT_Y))
        self.reset_high = np.array([[x], [y]])
        self.state = self.np_random.uniform(low=-self.reset_high, high=self.reset_high, size=(2, self.num_envs))
        self.steps = np.zeros(self.num_envs, dtype=np.int32)
        self.prev_done = np.zeros(self.num_envs, dtype=np.bool_)
        return self._observations(), {}

    def _observations(self) -> npt.NDArray[np.float32]:
        assert self.state is not None
        theta, thetadot = self.state
        return np.stack((np.cos(theta), np.sin(theta), thetadot), axis=1).astype(np.float32)
