"""rlship/CartPolePixels-v1: CartPole-v1 seen through its screen, as the PyTorch DQN tutorial learns it.

Same dynamics, reward, termination and time limit as CartPole-v1 (Gymnasium's own `CartPoleEnv` and
`CartPoleVectorEnv` do the physics); the observation is the last `PREPROCESSING.frame_stack` preprocessed frames.

- `CartPolePixelsEnv` (what `gymnasium.make` gives, and so what `rlship evaluate` and the stop rule play): each
  step renders the 600x400 screen with Gymnasium's own `render_mode="rgb_array"` renderer (pygame) and applies
  `PREPROCESSING.preprocess` (rlship.frames), exactly what a server receiving those frames from a remote simulator
  computes. About 200 steps/s on one core: rendering dominates.
- `CartPolePixelsVectorEnv` (what `gymnasium.make_vec` gives, and so what training steps): the same physics for N
  envs in one NumPy call, and `draw_frames`, a NumPy renderer that draws the cart, pole, axle and track straight
  at the preprocessed resolution (each output pixel the mean of point samples, one per screen column across it and
  3 down it, only in a window around the cart), tens of times faster. tests/test_cartpole_pixels.py shows its
  frames match Gymnasium's rendered-and-preprocessed frames within `RENDER_TOLERANCE` grey levels (mean absolute
  difference; the largest difference is bounded by `render_max_difference`).

Both take the preprocessing as the `observation_preprocessing` kwarg (a `FramePreprocessing` or its config.json
form; default `PREPROCESSING`): a policy's config.json says which it was trained on, and evaluation makes the env
with it (`PolicySpec.env_make_kwargs`), so the policies made before the default changed still evaluate. The twin
draws grey crops of a whole number of screen px per output px on each axis.

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
from dataclasses import replace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv, CartPoleVectorEnv
from gymnasium.vector.utils import batch_space

from rlship.frames import FramePreprocessing, FrameStack

TWO_FRAMES_25X100 = FramePreprocessing(
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
# the env's default since 2026-11-30 (docs/algorithms.md, "dqn on pixels"): the same frames, 3 of them 2 steps
# apart (t-4, t-2, t), so that the motion between the oldest and the newest is 4 steps of it, not 1
PREPROCESSING = replace(TWO_FRAMES_25X100, frame_stack=3, frame_gap=2)
# draw_frames against Gymnasium's renderer + preprocessing, the mean absolute difference per pixel of a frame, in
# grey levels of 255 (measured over 300 random-play states: at most 0.25 for 25x100, 25x150 and 25x200)
RENDER_TOLERANCE = 1.0


def render_max_difference(preprocessing: FramePreprocessing) -> int:
    """The largest single-pixel difference draw_frames may make: where the cart's edge (black on white) or the
    pole's falls on a different screen column than pygame's rasterisation puts it, one column of the output
    pixel's width, plus a quarter (measured over 300 states: 43 at 6 px per output px, 64 at 4, 85 at 3)."""
    return int(WHITE / ((preprocessing.right - preprocessing.left) / preprocessing.width) * 1.25)


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

# draw_frames' output pixels around the cart: 186 screen px (the pole reaches 90 px to the side at 0.8 rad)
_WINDOW_PX = 186


def _preprocessing(desc: FramePreprocessing | dict[str, Any] | None) -> FramePreprocessing:
    """The env's preprocessing: PREPROCESSING, or one given as an env kwarg (a `FramePreprocessing` or its
    config.json form), which must take Gymnasium's 600x400 RGB screen."""
    if desc is None:
        return PREPROCESSING
    prep = desc if isinstance(desc, FramePreprocessing) else FramePreprocessing.from_dict(desc)
    if prep.frame_shape != (SCREEN_H, SCREEN_W, 3):
        raise ValueError(
            f"rlship/CartPolePixels-v1 renders {SCREEN_W}x{SCREEN_H} RGB frames: observation_preprocessing needs "
            f"frame_height {SCREEN_H}, frame_width {SCREEN_W}, frame_channels 3; got {list(prep.frame_shape)}"
        )
    return prep


def _check_drawable(prep: FramePreprocessing) -> None:
    """draw_frames draws grey frames whose crop is a whole number of screen px per output px on each axis."""
    rows, columns = prep.bottom - prep.top, prep.right - prep.left
    if not prep.grayscale or rows % prep.height or columns % prep.width:
        raise ValueError(
            "the NumPy-drawn rlship/CartPolePixels-v1 (gymnasium.make_vec) draws grey frames whose crop is a whole "
            f"number of screen px per output px: {rows} rows to {prep.height}, {columns} columns to {prep.width}, "
            f"grayscale {prep.grayscale}; use gymnasium.make for this preprocessing"
        )


def draw_frames(states: np.ndarray, preprocessing: FramePreprocessing = PREPROCESSING) -> np.ndarray:
    """Preprocessed frames (N, height, width, 1) uint8 of N CartPole states (N, 4): what `preprocessing.preprocess`
    makes of Gymnasium's rendering of them, drawn directly (each output pixel the mean of point samples: one per
    screen column across it, 3 down it)."""
    p = preprocessing
    _check_drawable(p)
    by, bx = (p.bottom - p.top) // p.height, (p.right - p.left) // p.width  # screen px per output px
    window = min(p.width, -(-_WINDOW_PX // bx))
    samples_x = np.arange(bx) + 0.5  # screen column centres: the cart's edges move in whole px on Gymnasium's screen
    samples_y = (np.arange(3) * 2 + 1.0) * by / 6  # for 6 px: at 1, 3, 5
    states = np.asarray(states, dtype=np.float64).reshape(-1, 4)
    n = len(states)
    cart_x = states[:, 0] * SCALE + SCREEN_W / 2.0
    cos, sin = np.cos(states[:, 2]), np.sin(states[:, 2])
    first = np.clip(np.floor((cart_x - p.left - window * bx / 2) / bx).astype(np.int64), 0, p.width - window)
    columns = first[:, None] + np.arange(window)  # (N, window) output columns
    # sample positions: x in screen px, y in the y-up drawing coordinates (screen row r covers y in [399-r, 400-r))
    sx = (p.left + columns[:, :, None] * bx + samples_x)[:, None, None, :, :]  # (N, 1, 1, window, bx)
    rows = p.top + np.arange(p.height)[:, None] * by + samples_y  # (height, 3) screen rows
    sy = (SCREEN_H - rows)[None, :, :, None, None]  # (1, height, 3, 1, 1)
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
    block = grey.mean(axis=(2, 4))  # (N, height, window)
    frames = np.full((n, p.height, p.width), WHITE, dtype=np.uint8)
    track_row = (SCREEN_H - 1 - TRACK_Y - p.top) // by  # the output row the track line falls in
    if p.top <= SCREEN_H - 1 - TRACK_Y < p.bottom:
        # the track, a 1 px black line drawn over everything, is one screen row of its block's: thinner than the
        # samples' spacing, so it is blended in by the area it covers, across the whole width
        block[:, track_row] *= 1.0 - 1.0 / by
        frames[:, track_row] = np.uint8(np.rint(WHITE * (1.0 - 1.0 / by)))
    np.put_along_axis(
        frames, np.broadcast_to(columns[:, None, :], block.shape), np.rint(block).astype(np.uint8), axis=2
    )
    return frames[..., None]


def _observation_space(prep: FramePreprocessing) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, prep.observation_shape, dtype=np.uint8)


class CartPolePixelsEnv(CartPoleEnv):
    """CartPole-v1 whose observation is the frame stack of Gymnasium's rendered, preprocessed screen."""

    metadata: ClassVar[dict[str, Any]] = {
        **CartPoleEnv.metadata,
        "render_modes": ["rgb_array"],
        "observation_preprocessing": PREPROCESSING,
    }

    def __init__(
        self,
        render_mode: str | None = "rgb_array",
        observation_preprocessing: FramePreprocessing | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(
                f"rlship/CartPolePixels-v1 renders to arrays only (render_mode='rgb_array'); got {render_mode!r}"
            )
        # pygame renders off-screen; without a display it must not probe for one (nor for audio)
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        prep = _preprocessing(observation_preprocessing)
        super().__init__(render_mode="rgb_array", **kwargs)  # its observation is the rendered screen
        self.metadata = {**self.metadata, "observation_preprocessing": prep}
        self.observation_space = _observation_space(prep)
        self._stack = FrameStack(prep)

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

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = 500,
        render_mode: str | None = None,
        observation_preprocessing: FramePreprocessing | dict[str, Any] | None = None,
    ) -> None:
        prep = _preprocessing(observation_preprocessing)
        _check_drawable(prep)
        super().__init__(num_envs=num_envs, max_episode_steps=max_episode_steps, render_mode=render_mode)
        self.metadata = {**self.metadata, "observation_preprocessing": prep}
        self.preprocessing = prep
        self.single_observation_space = _observation_space(prep)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        # the latest `prep.history` frames of each env, oldest first; the observation is every frame_gap-th
        self._frames = np.zeros((num_envs, prep.history, *prep.image_shape), dtype=np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = super().reset(seed=seed, options=options)
        self._frames[:] = draw_frames(self.state.T, self.preprocessing)[:, None]
        return self._observation(), info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        restarted = self.prev_done.copy()  # these envs reset in this step (next-step autoreset)
        _, reward, terminated, truncated, info = super().step(actions)
        frames = draw_frames(self.state.T, self.preprocessing)
        self._frames[:, :-1] = self._frames[:, 1:]
        self._frames[:, -1] = frames
        self._frames[restarted] = frames[restarted][:, None]
        return self._observation(), reward, terminated, truncated, info

    def _observation(self) -> np.ndarray:
        return self._frames[:, :: self.preprocessing.frame_gap].copy()
