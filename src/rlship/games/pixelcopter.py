"""Pixelcopter as a Gymnasium env: the PyGame Learning Environment game, rewritten in NumPy for rlship.

The rules follow PLE's `ple/games/pixelcopter.py` as `gym_pygame`'s `Pixelcopter-PLE-v0` ran it (the env of the
Hugging Face Deep RL course, unit 4): a 48x48 screen, 30 frames per second with PLE's fixed time step
(`force_fps`: every frame advances 1000/30 ms), PLE's default rewards. Every frame:

1. momentum += (climb if climbing else fall) * dt; momentum *= 0.99; y += momentum (y grows downwards);
2. the blocks and the terrain columns scroll left by speed * dt (0.64 px);
3. the copter dies on touching a block, on touching a terrain column while its y - 2.4 is at or above the
   column's ceiling (column centre - 12) or its y is at or below the column's floor (column centre + 12),
   and anywhere above y = 6 or below y = 42;
4. +1 when the next block passes the copter (a new one then appears 48-72 px ahead), +1 for each terrain
   column that scrolls off the left edge, -5 on the frame the copter dies (PLE's "positive" and "loss"; its
   "tick" reward is 0).

Observation: PLE's seven-number game state, in its order, as float32 (`STATE_NAMES`). Actions: 0 nothing,
1 climb. Geometry is kept in floats, with pygame's sizes (the copter's box is 2x2 px, a block 4x9, a terrain
column 4 wide and 72 tall); pygame itself snaps sprite rectangles to whole pixels before testing collisions.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np

WIDTH = HEIGHT = 48
FPS = 30
DT = 1000.0 / FPS  # ms per frame: PLE with force_fps=True (its default, and gym_pygame's) steps this much per frame
SPEED = 0.0004 * WIDTH  # px per ms: the scroll speed, and the scale of the copter's accelerations
CLIMB = SPEED * -0.875  # momentum change per ms while climbing (negative: up)
FALL = SPEED * 0.09  # momentum change per ms otherwise
DRAG = 0.99  # momentum kept per frame

PLAYER_X = int(WIDTH * 0.35)  # 16: the copter never moves sideways
PLAYER_HEIGHT = HEIGHT * 0.05  # 2.4: the ceiling test uses this size ...
PLAYER_BOX = int(WIDTH * 0.05)  # 2: ... and collisions the 2x2 box of its pygame sprite
BLOCK_W, BLOCK_H = int(WIDTH * 0.1), int(HEIGHT * 0.2)  # 4 x 9
TERRAIN_W, TERRAIN_H = int(WIDTH * 0.1), int(HEIGHT * 1.5)  # 4 x 72, centred on the corridor's middle
CORRIDOR_HALF = HEIGHT * 0.25  # 12: ceiling and floor sit this far from a column's centre
TOP_LIMIT, BOTTOM_LIMIT = HEIGHT * 0.125, HEIGHT * 0.875  # 6 and 42: the copter dies beyond these
REFILL_AT = 13  # fewer terrain columns than this (after scrolling) and four more screens' worth are added

REWARD_PASS = 1.0  # PLE's "positive": a block passed, a terrain column scrolled off
REWARD_LOSS = -5.0  # PLE's "loss": on the frame the copter dies

STATE_NAMES = (
    "player_y",
    "player_vel",
    "player_dist_to_ceil",
    "player_dist_to_floor",
    "next_gate_dist_to_player",
    "next_gate_block_top",
    "next_gate_block_bottom",
)

GREEN = (120, 240, 80)
WHITE = (255, 255, 255)


def _overlaps(ax: float, ay: float, aw: float, ah: float, bx: float, by: float, bw: float, bh: float) -> bool:
    """pygame's Rect.colliderect on (left, top, width, height) boxes: touching edges do not collide."""
    return ax < bx + bw and ay < by + bh and ax + aw > bx and ay + ah > by


def _box(cx: float, cy: float, w: int, h: int) -> tuple[float, float, float, float]:
    """The (left, top, w, h) box of a sprite centred on (cx, cy), as pygame's `rect.center = ...` places it."""
    return cx - w // 2, cy - h // 2, w, h


class PixelcopterEnv(gym.Env[np.ndarray, np.int64]):
    """Fly the copter through the cave: stay between ceiling and floor and miss the blocks."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, render_mode: str | None = None, render_scale: int = 8) -> None:
        """`render_scale`: screen pixels per game pixel in `render()` frames (8: 384x384, a watchable replay)."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}; got {render_mode!r}")
        if not isinstance(render_scale, int) or not 1 <= render_scale <= 32:
            raise ValueError(f"render_scale must be an integer from 1 to 32; got {render_scale!r}")
        self.render_mode = render_mode
        self.render_scale = render_scale
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(len(STATE_NAMES),), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.y = HEIGHT / 2
        self.momentum = 0.0
        self.blocks: list[list[float]] = []  # [x, y] centres, in the order they appeared
        # Terrain columns, in the order they appeared, which is also left to right (a new screen's worth is
        # added 2 px past the screen's right edge, only once fewer columns than fill the screen are left).
        # All scroll together, so each is kept as its x at scroll 0: on screen it is at terrain_x[i] - scroll.
        # Sorted plain lists let bisect find the columns under the copter in well under a microsecond.
        self.scroll = 0.0
        self.terrain_x: list[float] = []
        self.terrain_y: list[int] = []  # the cave's middle at each column
        self.dead = False

    # --- the game

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.y = HEIGHT / 2
        self.momentum = 0.0
        self.blocks = []
        self._add_block()
        self.scroll = 0.0
        self.terrain_x, self.terrain_y = [], []
        self._add_terrain(0, WIDTH * 4)
        self.dead = False
        return self._state(), {}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.dead:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        if action not in (0, 1):  # cheaper than Discrete.contains, and takes NumPy integers alike
            raise ValueError(f"action must be 0 (nothing) or 1 (climb); got {action!r}")
        reward = 0.0
        lives = 1

        # 1-2. the copter moves, then everything else scrolls left
        self.momentum += (CLIMB if int(action) == 1 else FALL) * DT
        self.momentum *= DRAG
        self.y += self.momentum
        shift = SPEED * DT
        for block in self.blocks:
            block[0] -= shift
        self.scroll += shift

        # 3. collisions: blocks, then the terrain columns the copter's box overlaps
        player = _box(PLAYER_X, self.y, PLAYER_BOX, PLAYER_BOX)
        for x, y in self.blocks:
            if _overlaps(*player, *_box(x, y, BLOCK_W, BLOCK_H)):
                lives -= 1
        for i in self._columns_under_player():
            if self.y - PLAYER_HEIGHT <= self.terrain_y[i] - CORRIDOR_HALF:
                lives -= 1
            if self.y >= self.terrain_y[i] + CORRIDOR_HALF:
                lives -= 1

        # 4. a block that reaches the copter while it is the only one scores and brings the next one;
        # blocks and columns are dropped once wholly off screen, each column scoring as it goes
        for block in list(self.blocks):
            if block[0] <= PLAYER_X and len(self.blocks) == 1:
                reward += REWARD_PASS
                self._add_block()
            if block[0] <= -BLOCK_W:
                self.blocks.remove(block)
        gone = bisect_right(self.terrain_x, self.scroll - TERRAIN_W)  # columns now at x <= -4
        if gone:
            reward += REWARD_PASS * gone
            del self.terrain_x[:gone], self.terrain_y[:gone]

        if self.y < TOP_LIMIT:
            lives -= 1
        if self.y > BOTTOM_LIMIT:
            lives -= 1
        if len(self.terrain_x) <= REFILL_AT:
            self._add_terrain(WIDTH, WIDTH * 5)
        self.dead = lives <= 0
        if self.dead:
            reward += REWARD_LOSS
        return self._state(), reward, self.dead, False, {}

    def _add_block(self) -> None:
        """A block 48-72 px ahead, its centre 8-19 px above or 5-15 px below the middle, or on it."""
        x = int(self.np_random.integers(WIDTH, int(WIDTH * 1.5)))
        offset = int(self.np_random.integers(int(HEIGHT * -0.25), int(HEIGHT * 0.25)))
        if offset < 0:  # PLE pushes off-centre blocks further out, leaving the middle to the copter
            offset -= int(HEIGHT * 0.10)
        if offset > 0:
            offset += int(HEIGHT * 0.10)
        self.blocks.append([float(x), float(offset + int(HEIGHT * 0.5))])

    def _add_terrain(self, start: int, end: int) -> None:
        """Columns every 4 px from `start` to `end`: a cave whose middle follows a jittered sine wave."""
        x = np.arange(start + TERRAIN_W // 2, end + TERRAIN_W // 2, TERRAIN_W, dtype=np.float64)
        freq = 4.5 / WIDTH + self.np_random.uniform(-0.01, 0.01)
        jitter = (HEIGHT * 0.125) * np.sin(freq * x + self.np_random.uniform(0.0, 0.5, size=x.size))
        y = (HEIGHT / 2.0 + jitter).astype(np.int64)  # int() truncation, as PLE; the middle stays positive
        self.terrain_x.extend((x + self.scroll).tolist())
        self.terrain_y.extend(y.tolist())

    def _columns_under_player(self) -> range:
        """Indices (oldest first) of the terrain columns whose boxes overlap the copter's box sideways.

        The columns are 72 px tall around a middle of 18-30 px, so they span every height the copter can
        reach: overlapping sideways is overlapping. A column at x overlaps when x - 2 < 17 and x + 2 > 15."""
        player_left = PLAYER_X - PLAYER_BOX // 2
        first = bisect_right(self.terrain_x, player_left - TERRAIN_W + TERRAIN_W // 2 + self.scroll)
        end = bisect_left(self.terrain_x, player_left + PLAYER_BOX + TERRAIN_W // 2 + self.scroll)
        return range(first, end)

    def _state(self) -> np.ndarray:
        ahead = [(x - PLAYER_X, y) for x, y in self.blocks if 0 < x - PLAYER_X < 999]
        gate_dist, gate_y = min(ahead) if ahead else (999.0, 0.0)  # a block is always ahead in play
        under = self._columns_under_player()
        middle = float(self.terrain_y[under[0]]) if under else HEIGHT / 2
        return np.array(
            [
                self.y,
                self.momentum,
                self.y - (middle - CORRIDOR_HALF),
                (middle + CORRIDOR_HALF) - self.y,
                gate_dist,
                gate_y,  # PLE reports the block's centre as its "top" ...
                gate_y + BLOCK_H,  # ... and centre + height as its "bottom"; kept so the numbers match PLE's
            ],
            dtype=np.float32,
        )

    # --- drawing

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        frame = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        _fill(frame, *_box(PLAYER_X, self.y, PLAYER_BOX, PLAYER_BOX), WHITE)
        for x, y in self.blocks:
            _fill(frame, *_box(x, y, BLOCK_W, BLOCK_H), GREEN)
        for x, y in zip(self.terrain_x, self.terrain_y, strict=True):
            left, top, _, _ = _box(x - self.scroll, y, TERRAIN_W, TERRAIN_H)
            # PLE's column sprite: a 24 px ceiling at its top and a floor from 50.4 px (drawn from row 50) down
            _fill(frame, left, top, TERRAIN_W, HEIGHT * 0.5, GREEN)
            _fill(frame, left, top + int(HEIGHT * 1.05), TERRAIN_W, HEIGHT * 0.5, GREEN)
        if self.render_scale > 1:  # each game pixel a square block: the game's own look, big enough to watch
            frame = frame.repeat(self.render_scale, axis=0).repeat(self.render_scale, axis=1)
        return frame


def _fill(frame: np.ndarray, left: float, top: float, w: float, h: float, color: tuple[int, int, int]) -> None:
    """Paint a box, snapped to whole pixels and clipped to the screen."""
    x0, y0 = int(np.floor(left)), int(np.floor(top))
    x1, y1 = int(np.floor(left + w)), int(np.floor(top + h))
    frame[max(y0, 0) : max(min(y1, HEIGHT), 0), max(x0, 0) : max(min(x1, WIDTH), 0)] = color
