"""Pixel policies for the serving tests (not a test module): real image-policy artifacts, their frame
preprocessings, the CartPole frames env their artifacts name (registered with Gymnasium on import), and the
encodings a frame is sent to `rlship serve` in (PNG, .npy, base64)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

from rlship.frames import FramePreprocessing
from rlship.networks import CNNSpec, ConvLayer
from rlship.policy import new_policy

ENV_ID = "rlship_test/CartPoleFrames-v0"
# CartPole's 400x600 rendered frame: the strip the cart moves in, at an eighth of the size, grey, two frames
PIX = FramePreprocessing(
    frame_height=400,
    frame_width=600,
    frame_channels=3,
    top=160,
    bottom=320,
    left=0,
    right=600,
    height=20,
    width=75,
    grayscale=True,
    frame_stack=2,
)
# a small image policy's frames (60x40 RGB, grey 30x20, a stack of 2), for tests that need no CartPole rendering
SMALL = FramePreprocessing(
    frame_height=40, frame_width=60, frame_channels=3, top=0, bottom=40, left=0, right=60, height=20, width=30,
    grayscale=True, frame_stack=2,
)  # fmt: skip


def make_frames_env(preprocessing: FramePreprocessing = PIX) -> gym.Env[Any, Any]:
    """CartPole-v1 whose observation is its own rendered frame, preprocessed and stacked (what a pixel env does)."""
    base = gym.make("CartPole-v1", render_mode="rgb_array")
    images = gym.wrappers.TransformObservation(
        base,
        lambda _obs: preprocessing.preprocess(base.render()),
        gym.spaces.Box(0, 255, preprocessing.image_shape, np.uint8),
    )
    return gym.wrappers.FrameStackObservation(images, preprocessing.frame_stack, padding_type="reset")


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=make_frames_env)


def pixel_policy(folder: Path, prep: FramePreprocessing, seed: int) -> Path:
    """A real artifact (a small CNN). With a stack of two frames its weights are set by hand to push the cart the way
    the top of the pole moves (the darkness of the strip's upper half moving left or right between the two
    frames), a rough balancing rule: its actions depend on both frames, so a stack rebuilt wrongly (a frame
    missing, or out of order) changes the actions and the episode returns."""
    torch.manual_seed(seed)
    space = gym.spaces.Box(0, 255, prep.observation_shape, np.uint8)
    motion = prep.frame_stack == 2
    conv = (ConvLayer(2, 1, 1),) if motion else (ConvLayer(4, 5, 2),)
    policy = new_policy(
        "dqn",
        ENV_ID,
        space,
        gym.spaces.Discrete(2),
        CNNSpec(conv, (2,) if motion else (16,), "relu", {"q_values": 2}),
        hyperparameters={},
        seed=seed,
        action_distribution="epsilon_greedy",
        frames=prep,
    )
    if motion:
        height, width = prep.height, prep.width
        # 1x1 conv: plane 0 = old - new (where it got darker), plane 1 = new - old; both through a ReLU
        moved = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).reshape(2, 2, 1, 1)
        columns = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
        lean = torch.zeros(2, height, width)
        lean[0, : height // 2] = columns * 0.25  # darkness arriving right of the middle counts plus
        lean[1, : height // 2] = -columns * 0.25
        hidden = torch.stack([lean.ravel(), -lean.ravel()])  # relu(z), relu(-z)
        state = {
            "encoder.0.weight": moved,
            "encoder.0.bias": torch.zeros(2),
            "trunk.0.weight": hidden,
            "trunk.0.bias": torch.zeros(2),
            # q(push right) - q(push left) = z + an offset: identical frames (an episode's first stack) must not
            # make an exact tie, which float rounding would break one way in a batch of three, the other in one
            "heads.q_values.0.weight": torch.tensor([[0.0, 0.0], [1.0, -1.0]]),
            "heads.q_values.0.bias": torch.tensor([0.0, 0.0123]),
        }
        policy.network.load_state_dict(state)
    return policy.save(folder)


def png(array: np.ndarray, mode: str | None = None, **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
