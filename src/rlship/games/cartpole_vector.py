"""CartPole-v1's vector env, Gymnasium's own (`CartPoleVectorEnv`), stepped with fewer NumPy calls.

Training and the stop rule's confirmations step CartPole's vector env tens of thousands of times a run, a handful of
envs at a time, where each of the ~60 NumPy calls of `CartPoleVectorEnv.step` costs more than its arithmetic; its
action check alone (`MultiDiscrete.contains`) is a tenth of a step. `LeanCartPoleVectorEnv.step` does the same
floating-point operations in the same order on the same float64 state (the Euler update in place, the bounds
checked as |x| > limit, the resets drawn only when an env resets, which draws the same numbers), checks the
actions in a few NumPy calls, so every observation, reward and flag is bit for bit Gymnasium's
(tests/test_cartpole_vector.py steps both side by side through thousands of episodes) at about half the cost a step.
Reset, rendering and the spaces are Gymnasium's, inherited.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv


class LeanCartPoleVectorEnv(CartPoleVectorEnv):
    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        action = np.asarray(action)
        if action.shape != (self.num_envs,) or action.dtype == object or not ((action == 0) | (action == 1)).all():
            raise ValueError(f"CartPole actions are {self.num_envs} numbers, each 0 or 1; got {action!r}")
        assert self.state is not None, "Call reset before using step method."
        state = self.state
        x, x_dot, theta, theta_dot = state  # views: the Euler update below writes the new state in place
        force = np.sign(action - 0.5) * self.force_mag
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        if self.kinematics_integrator == "euler":
            x += self.tau * x_dot
            x_dot += self.tau * xacc
            theta += self.tau * theta_dot
            theta_dot += self.tau * thetaacc
        else:  # semi-implicit euler
            x_dot += self.tau * xacc
            x += self.tau * x_dot
            theta_dot += self.tau * thetaacc
            theta += self.tau * theta_dot
        # x < -limit or x > limit, for the finite state CartPole has
        terminated = (np.abs(x) > self.x_threshold) | (np.abs(theta) > self.theta_threshold_radians)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        if self._sutton_barto_reward:
            reward = -np.array(terminated, dtype=np.float32)
        else:
            reward = np.ones_like(terminated, dtype=np.float32)
        prev_done = self.prev_done
        if prev_done.any():  # Gymnasium draws for every step, zero numbers when no env resets: no draw at all
            state[:, prev_done] = self.np_random.uniform(low=self.low, high=self.high, size=(4, prev_done.sum()))
            self.steps[prev_done] = 0
            reward[prev_done] = 0.0
            terminated[prev_done] = False
            truncated[prev_done] = False
        self.prev_done = terminated | truncated
        return state.T.astype(np.float32), reward, terminated, truncated, {}
