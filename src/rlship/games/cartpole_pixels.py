"""rlship/CartPolePixels-v1: CartPole-v1 seen through its screen, as the PyTorch DQN tutorial learns it.

Same dynamics, reward, termination and time limit as CartPole-v1 (Gymnasium's own `CartPoleEnv` and
`CartPoleVectorEnv` do the physics); the observation is the last `PREPROCESSING.frame_stack` preprocessed frames.

- `CartPolePixelsEnv` (what `gymnasium.make` gives, and so what `rlship evaluate` and the stop rule play): each
  step renders the 600x400 screen with Gymnasium's own `render_mode="rgb_array"` renderer (pygame) and applies
  `PREPROCESSING.preprocess` (rlship.frames), exactly what a server receiving those frames from a remote simulator
  computes. About 200 steps/s on one core: rendering dominates.
- `CartPolePixelsVectorEnv` (what `gymnasium.make_vec` gives, and so what training steps): the same physics for N
  envs in one NumPy call, and `draw_frames`, a NumPy renderer that draws the cart, pole, axle and track straight
  at the preprocessed resolution (3x3 samples per output pixel, only in a window around the cart), tens of times
  faster. tests/test_cartpole_pixels.py shows its frames match Gymnasium's rendered-and-preprocessed frames within
  `RENDER_TOLERANCE` grey levels (mean absolute difference, max difference bounded too).

Preprocessing (why): the screen's rows 162-311 hold everything that moves (the pole's tip at its highest, the
cart, the track); all 600 columns are kept because the crop is a fixed rectangle (a pure function of one frame, so
a server can compute it from a raw frame; the tutorial's crop follows the cart, which needs the env's state). The
150x600 strip is made grey (the cart, pole and axle differ in brightness: 0, 161, 139 on 255) and box-averaged 6x
to 25x100, where the 10 px pole is still 1.7 px wide and its tilt shows in the grey levels. Two frames are stacked:
the pair carries the velocities (the tutorial feeds their difference; a stack lets the network learn the
difference and keeps the current frame too), and a third frame would add acceleration, which a policy of
CartPole does not need.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv, CartPoleVectorEnv
from gymnasium.vector.utils import batch_space

from rlship.frames import FramePreprocessing, FrameStack

PREPROCESSING = FramePreprocessing(
    frame_height=400,
    frame_width=600,
    frame_channels=3,
    top=162,
    bottom=312,
    left=0,
    right=600,
    height=25,
    width=100,
    grayscale=True,
    frame_stack=2,
)
# draw_frames against Gymnasium's renderer + PREPROCESSING (measured over 300 random-play states: 0.24 and 46):
# the mean absolute difference per pixel of a frame, in grey levels of 255, and the largest single-pixel
# difference (at the pole's edges, where 3x3 point samples measure its coverage in steps of 1/9)
RENDER_TOLERANCE = 1.0
RENDER_MAX_DIFFERENCE = 56

# Gymnasium's CartPole screen (cartpole.py `render`), in its y-up drawing coordinates before the vertical flip
SCREEN_W, SCREEN_H = 600, 400
SCALE = SCREEN_W / (2 * 2.4)  # px per metre: the screen spans x in [-2.4, 2.4]
CART_HALF_W, CART_BOTTOM, CART_TOP = 25.0, 85.0, 115.0
AXLE_Y = 107.5  # carty + cartheight / 4
# the pole in its own frame, from the axle: 10 px wide, plus the half pixel each side that pygame's anti-aliased
# outline adds (measured: it halves the largest differences at the pole's edges)
POLE_HALF_W, POLE_BOTTOM, POLE_TOP = 5.5, -5.0, SCALE * 2 * 0.5 - 5.0
AXLE_RADIUS = 5
TRACK_Y = 100
# Pillow's "L" conversion (ITU-R 601-2) of the colours Gymnasium draws with
WHITE, BLACK = 255, 0
POLE_GREY = (202 * 299 + 152 * 587 + 101 * 114) // 1000  # (202, 152, 101)
AXLE_GREY = (129 * 299 + 132 * 587 + 203 * 114) // 1000  # (129, 132, 203)

_BLOCK = (PREPROCESSING.bottom - PREPROCESSING.top) // PREPROCESSING.height  # 6 screen px per output px
_SAMPLES = (np.arange(3) * 2 + 1.0) * _BLOCK / 6  # 3 samples across each block: at 1, 3, 5 px
_TRACK_ROW = (SCREEN_H - 1 - TRACK_Y - PREPROCESSING.top) // _BLOCK  # the output row the track line falls in
_WINDOW = 31  # output columns drawn around the cart (186 px: the pole reaches 90 px to the side at 0.8 rad)


def draw_frames(states: np.ndarray) -> np.ndarray:
    """Preprocessed frames (N, 25, 100, 1) uint8 of N CartPole states (N, 4): what `PREPROCESSING.preprocess` makes
    of Gymnasium's rendering of them, drawn directly (each output pixel the mean of 3x3 point samples)."""
    p = PREPROCESSING
    states = np.asarray(states, dtype=np.float64).reshape(-1, 4)
    n = len(states)
    cart_x = states[:, 0] * SCALE + SCREEN_W / 2.0
    cos, sin = np.cos(states[:, 2]), np.sin(states[:, 2])
    first = np.clip(np.floor((cart_x - _WINDOW * _BLOCK / 2) / _BLOCK).astype(np.int64), 0, p.width - _WINDOW)
    columns = first[:, None] + np.arange(_WINDOW)  # (N, window) output columns
    # sample positions: x in screen px, y in the y-up drawing coordinates (screen row r covers y in [399-r, 400-r))
    sx = (columns[:, :, None] * _BLOCK + _SAMPLES)[:, None, None, :, :]  # (N, 1, 1, window, 3)
    rows = p.top + np.arange(p.height)[:, None] * _BLOCK + _SAMPLES  # (25, 3) screen rows
    sy = (SCREEN_H - rows)[None, :, :, None, None]  # (1, 25, 3, 1, 1)
    cx = cart_x[:, None, None, None, None]
    grey = np.full(np.broadcast_shapes(sx.shape, sy.shape), float(WHITE))
    cart = (np.abs(sx - cx) <= CART_HALF_W) & (sy >= CART_BOTTOM) & (sy <= CART_TOP)
    grey[cart] = BLACK
    # the pole is drawn rotated by -theta about the axle: a point is on it when rotating it back by theta lands it
    # in the upright rectangle
    dx, dy = sx - cx, sy - AXLE_Y
    c, s = cos[:, None, None, None, None], sin[:, None, None, None, None]
    u, v = dx * c - dy * s, dx * s + dy * c
    grey[(np.abs(u) <= POLE_HALF_W) & (v >= POLE_BOTTOM) & (v <= POLE_TOP)] = POLE_GREY
    ax = np.floor(cart_x)[:, None, None, None, None] + 0.5  # pygame draws the circle at int(cartx), int(107.5)
    grey[(sx - ax) ** 2 + (sy - (int(AXLE_Y) + 0.5)) ** 2 <= AXLE_RADIUS**2 + 0.5] = AXLE_GREY
    block = grey.mean(axis=(2, 4))  # (N, 25, window)
    # the track, a 1 px black line drawn over everything, is one screen row of its block's 6: thinner than the
    # samples' spacing, so it is blended in by the area it covers, across the whole width
    block[:, _TRACK_ROW] *= 1.0 - 1.0 / _BLOCK
    frames = np.full((n, p.height, p.width), WHITE, dtype=np.uint8)
    frames[:, _TRACK_ROW] = np.uint8(np.rint(WHITE * (1.0 - 1.0 / _BLOCK)))
    np.put_along_axis(
        frames, np.broadcast_to(columns[:, None, :], block.shape), np.rint(block).astype(np.uint8), axis=2
    )
    return frames[..., None]


def _observation_space() -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, PREPROCESSING.observation_shape, dtype=np.uint8)


class CartPolePixelsEnv(CartPoleEnv):
    """CartPole-v1 whose observation is the frame stack of Gymnasium's rendered, preprocessed screen."""

    metadata: ClassVar[dict[str, Any]] = {
        **CartPoleEnv.metadata,
        "render_modes": ["rgb_array"],
        "observation_preprocessing": PREPROCESSING,
    }

    def __init__(self, render_mode: str | None = "rgb_array", **kwargs: Any) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(
                f"rlship/CartPolePixels-v1 renders to arrays only (render_mode='rgb_array'); got {render_mode!r}"
            )
        # pygame renders off-screen; without a display it must not probe for one (nor for audio)
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        super().__init__(render_mode="rgb_array", **kwargs)  # its observation is the rendered screen
        self.observation_space = _observation_space()
        self._stack = FrameStack(PREPROCESSING)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = super().reset(seed=seed, options=options)
        return self._stack.reset(self.render()), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        _, reward, terminated, truncated, info = super().step(action)
        return self._stack.push(self.render()), reward, terminated, truncated, info


class CartPolePixelsVectorEnv(CartPoleVectorEnv):
    """N CartPole-v1 envs stepped in one NumPy call (next-step autoreset, as CartPoleVectorEnv), observed through
    `draw_frames`: for training, where Gymnasium's renderer would cost more than the learning."""

    metadata: ClassVar[dict[str, Any]] = {**CartPoleVectorEnv.metadata, "observation_preprocessing": PREPROCESSING}

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 500, render_mode: str | None = None) -> None:
        super().__init__(num_envs=num_envs, max_episode_steps=max_episode_steps, render_mode=render_mode)
        self.single_observation_space = _observation_space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._stacks = np.zeros((num_envs, *PREPROCESSING.observation_shape), dtype=np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = super().reset(seed=seed, options=options)
        self._stacks[:] = draw_frames(self.state.T)[:, None]
        return self._stacks.copy(), info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        restarted = self.prev_done.copy()  # these envs reset in this step (next-step autoreset)
        _, reward, terminated, truncated, info = super().step(actions)
        frames = draw_frames(self.state.T)
        self._stacks[:, :-1] = self._stacks[:, 1:]
        self._stacks[:, -1] = frames
        self._stacks[restarted] = frames[restarted][:, None]
        return self._stacks.copy(), reward, terminated, truncated, info
