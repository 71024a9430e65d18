"""Image observations: the preprocessing described in config.json and the frame stack (rlship.frames)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlship import schema
from rlship.frames import FramePreprocessing, FrameStack
from rlship.policy import spec_from_config

# CartPole's rendered frame (400x600 RGB): the strip of rows the cart moves in, at a tenth of the size
CARTPOLE = FramePreprocessing(
    frame_height=400, frame_width=600, frame_channels=3, top=160, bottom=320, left=0, right=600, height=40, width=150
)


def test_cartpole_frame_is_cropped_resized_and_stacked() -> None:
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    image = CARTPOLE.preprocess(frame)
    assert image.shape == (40, 150, 3) and image.dtype == np.uint8
    # an area average of 4x4 blocks: each output pixel is the rounded mean of the 16 pixels it covers
    strip = frame[160:320].astype(np.float64).reshape(40, 4, 150, 4, 3).mean(axis=(1, 3))
    assert np.abs(image.astype(np.float64) - strip).max() <= 1.0
    assert image.min() < 100 < image.max(), "the cart (dark) on the white background is in the strip"


def test_grayscale_keeps_one_channel() -> None:
    grey = FramePreprocessing(**{**CARTPOLE.__dict__, "grayscale": True, "frame_stack": 4})
    frame = np.full((400, 600, 3), (255, 0, 0), np.uint8)  # pure red: luma 0.299 * 255
    assert grey.observation_shape == (4, 40, 150, 1)
    assert np.all(grey.preprocess(frame) == 76)


def test_config_round_trip() -> None:
    assert FramePreprocessing.from_dict(CARTPOLE.to_dict()) == CARTPOLE
    # a gap of 1 (consecutive frames) is not written, so configs made before frame_gap existed read the same
    assert "frame_gap" not in CARTPOLE.to_dict()
    gapped = FramePreprocessing(**{**CARTPOLE.__dict__, "frame_stack": 3, "frame_gap": 2})
    assert gapped.to_dict()["frame_gap"] == 2 and FramePreprocessing.from_dict(gapped.to_dict()) == gapped


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "video"}, "observation_preprocessing.kind"),
        ({"frame_height": 10**9}, "observation_preprocessing.frame_height"),
        ({"frame_channels": 2}, "observation_preprocessing.frame_channels"),
        ({"bottom": 401}, "observation_preprocessing.bottom"),
        ({"top": 320, "bottom": 160}, "observation_preprocessing.bottom"),
        ({"height": 161}, "observation_preprocessing.height"),
        ({"frame_stack": 1000}, "observation_preprocessing.frame_stack"),
        ({"frame_gap": 0}, "observation_preprocessing.frame_gap"),
        ({"frame_gap": 17}, "observation_preprocessing.frame_gap"),
        ({"grayscale": "yes"}, "observation_preprocessing.grayscale"),
        ({"resampling": "bicubic"}, "observation_preprocessing.resampling"),
    ],
)
def test_bad_preprocessing_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(schema.ConfigError) as info:
        FramePreprocessing.from_dict({**CARTPOLE.to_dict(), **change})
    assert info.value.field == field


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((400, 600, 4), np.uint8),
        np.zeros((40, 150, 3), np.uint8),
        np.full((400, 600, 3), 256.0),
        np.full((400, 600, 3), np.nan),
        np.full((400, 600, 3), 0.5),
    ],
)
def test_bad_frames_are_refused(frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frame"):
        CARTPOLE.preprocess(frame)


class _Frames(gym.Env[np.ndarray, int]):
    """An env whose observation is a rendered frame that changes every step."""

    observation_space = gym.spaces.Box(0, 255, (400, 600, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._frame(), 1.0, False, self.t >= 5, {}

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(0, 256, (400, 600, 3), dtype=np.uint8)


def test_frame_stack_matches_gymnasium_frame_stack_observation() -> None:
    """The server's FrameStack and the training env's Gymnasium wrapper make the same observations."""
    prep = FramePreprocessing(**{**CARTPOLE.__dict__, "frame_stack": 3})
    wrapped = gym.wrappers.FrameStackObservation(
        gym.wrappers.TransformObservation(
            _Frames(), prep.preprocess, gym.spaces.Box(0, 255, prep.image_shape, np.uint8)
        ),
        stack_size=3,
        padding_type="reset",
    )
    raw, stack = _Frames(), FrameStack(prep)
    expected, _ = wrapped.reset(seed=7)
    assert np.array_equal(stack.reset(raw.reset(seed=7)[0]), expected)
    for _ in range(4):
        expected = wrapped.step(0)[0]
        assert np.array_equal(stack.push(raw.step(0)[0]), expected)
    assert expected.shape == prep.observation_shape


def test_a_stack_with_a_gap_holds_every_gap_th_frame_ending_with_the_newest() -> None:
    """frame_gap 2, stack 3: frames t-4, t-2, t, and at an episode's start copies of its first frame."""
    prep = FramePreprocessing(**{**CARTPOLE.__dict__, "frame_stack": 3, "frame_gap": 2})
    assert prep.history == 5 and prep.observation_shape == (3, 40, 150, 3)
    raw, stack = _Frames(), FrameStack(prep)
    first = raw.reset(seed=3)[0]
    images = [prep.preprocess(first)]
    assert np.array_equal(stack.reset(first), np.stack(images * 3))
    for t in range(1, 6):
        frame = raw.step(0)[0]
        images.append(prep.preprocess(frame))
        padded = [images[0]] * 4 + images  # before the first frame: copies of it
        expected = np.stack([padded[t + 4 - 4], padded[t + 4 - 2], padded[t + 4]])
        assert np.array_equal(stack.push(frame), expected)


def test_policy_config_checks_the_image_space_against_the_preprocessing() -> None:
    obs = {"type": "Box", "shape": [1, 40, 150, 3], "dtype": "uint8", "low": [0], "high": [255]}
    obs["low"], obs["high"] = [0] * 18000, [255] * 18000
    config = {
        "algorithm": "dqn",
        "env_id": "rlship/CartPolePixels-v1",
        "observation_space": obs,
        "observation_preprocessing": CARTPOLE.to_dict(),
        "action_space": {"type": "Discrete", "n": 2},
        "network": {
            "kind": "cnn_heads",
            "conv": [{"channels": 4, "kernel": 8, "stride": 4}],
            "hidden_sizes": [8],
            "activation": "relu",
            "heads": {"q_values": 2},
        },
        "action_distribution": {"kind": "epsilon_greedy", "epsilon": 0.0},
    }
    assert spec_from_config(config).frames == CARTPOLE
    mlp = {"kind": "mlp_heads", "hidden_sizes": [8], "activation": "relu", "heads": {"q_values": 2}}
    with pytest.raises(schema.ConfigError, match="cnn_heads"):  # an image policy's network is a CNN
        spec_from_config({**config, "network": mlp})
    wrong = {**config, "observation_preprocessing": {**CARTPOLE.to_dict(), "frame_stack": 2}}
    with pytest.raises(schema.ConfigError, match="observation_space"):
        spec_from_config(wrong)
    no_preprocessing = {k: v for k, v in config.items() if k != "observation_preprocessing"}
    with pytest.raises(schema.ConfigError, match="1-D Box"):
        spec_from_config(no_preprocessing)
