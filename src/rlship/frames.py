"""Image observations: how one rendered frame becomes what a pixel policy sees.

A pixel policy's config.json holds `observation_preprocessing` (a `FramePreprocessing`): the size of the frame the
env renders (Gymnasium's `render_mode="rgb_array"`), the rectangle of it that is kept, the size that rectangle is
resized to, whether it is made grey, and how many frames the observation stacks, `frame_gap` steps apart (1:
consecutive frames; 2: frames t-2k, ..., t-2, t). The observation is then a uint8 Box of shape (frame_stack, height,
width, channels), the oldest frame first, and at an episode's first frame the stack holds copies of it (Gymnasium's
`FrameStackObservation` with `padding_type="reset"`; with a gap, the frames before the episode's first are copies of
it). A `frame_gap` of 1 is not written to config.json, so the configs made before it existed are unchanged.

The preprocessing is a pure function of one frame, so the env used for training and evaluation, the server that
receives raw frames from a remote simulator, and `rlship simulate` all apply the same `preprocess` and agree
pixel for pixel. This module is torch-free (numpy and Pillow only): the server and the CLI import it cheaply.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlship import schema

# Bounds on what a config.json may describe, checked before any frame is allocated: 4096x4096 RGB is 48 MB, the
# most rlship accepts as one rendered frame; the observation itself stays within spaces.MAX_BOX_ELEMENTS.
MAX_FRAME_SIDE = 4096
MAX_FRAME_STACK = 16
MAX_FRAME_GAP = 16  # frames kept per stack: at most (16 - 1) * 16 + 1
CHANNELS = (1, 3)  # grey or RGB frames
RESAMPLING = "box"  # Pillow's area average: deterministic, and what downscaling a rendered frame needs


@dataclass(frozen=True)
class FramePreprocessing:
    """Crop a (frame_height, frame_width, frame_channels) uint8 frame to rows [top, bottom) and columns
    [left, right), resize the crop to (height, width) with an area average, optionally make it grey, and stack the
    results of the last `(frame_stack - 1) * frame_gap + 1` frames, every `frame_gap`-th, ending with the newest."""

    frame_height: int
    frame_width: int
    frame_channels: int
    top: int
    bottom: int
    left: int
    right: int
    height: int
    width: int
    grayscale: bool = False
    frame_stack: int = 1
    frame_gap: int = 1

    @property
    def history(self) -> int:
        """How many of the latest preprocessed frames the stack is drawn from."""
        return (self.frame_stack - 1) * self.frame_gap + 1

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """The shape of one rendered frame, as a simulator sends it."""
        return (self.frame_height, self.frame_width, self.frame_channels)

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else self.frame_channels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape of one preprocessed frame."""
        return (self.height, self.width, self.channels)

    @property
    def observation_shape(self) -> tuple[int, int, int, int]:
        """The shape of the observation a policy acts on: the stack of preprocessed frames, oldest first."""
        return (self.frame_stack, *self.image_shape)

    def to_dict(self) -> dict[str, Any]:
        desc = {"kind": "frames", **asdict(self), "resampling": RESAMPLING}
        if self.frame_gap == 1:
            del desc["frame_gap"]
        return desc

    @classmethod
    def from_dict(cls, desc: Any, field: str = "observation_preprocessing") -> FramePreprocessing:
        """The `observation_preprocessing` entry of config.json, checked field by field (a `schema.ConfigError`
        names the field): every size bounded, the crop inside the frame, a known channel count."""
        desc = schema.mapping(desc, field)
        schema.choice(schema.required(desc, "kind", field), f"{field}.kind", ("frames",))
        schema.choice(desc.get("resampling", RESAMPLING), f"{field}.resampling", (RESAMPLING,))

        def side(name: str, low: int = 1, high: int = MAX_FRAME_SIDE) -> int:
            return schema.integer(schema.required(desc, name, field), f"{field}.{name}", low, high)

        frame_height, frame_width = side("frame_height"), side("frame_width")
        channels = schema.integer(schema.required(desc, "frame_channels", field), f"{field}.frame_channels", 1, 3)
        if channels not in CHANNELS:
            raise schema.ConfigError(f"{field}.frame_channels", f"must be one of {list(CHANNELS)}; got {channels}")
        top, left = side("top", 0, frame_height - 1), side("left", 0, frame_width - 1)
        bottom, right = side("bottom", top + 1, frame_height), side("right", left + 1, frame_width)
        return cls(
            frame_height=frame_height,
            frame_width=frame_width,
            frame_channels=channels,
            top=top,
            bottom=bottom,
            left=left,
            right=right,
            height=side("height", 1, bottom - top),  # a crop is only ever made smaller
            width=side("width", 1, right - left),
            grayscale=schema.boolean(desc.get("grayscale", False), f"{field}.grayscale"),
            frame_stack=schema.integer(desc.get("frame_stack", 1), f"{field}.frame_stack", 1, MAX_FRAME_STACK),
            frame_gap=schema.integer(desc.get("frame_gap", 1), f"{field}.frame_gap", 1, MAX_FRAME_GAP),
        )

    def check_frame(self, frame: Any) -> np.ndarray:
        """`frame` as a uint8 array of `frame_shape`, or a ValueError that says what was expected. A grey frame
        may come without its channel axis."""
        array = np.asarray(frame)
        if array.ndim == 2 and self.frame_channels == 1:
            array = array[:, :, None]
        if array.shape != self.frame_shape:
            raise ValueError(
                f"a frame must have shape {list(self.frame_shape)} (height, width, channels), as the env renders it; "
                f"got {list(array.shape)}"
            )
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.number) or not np.all((array >= 0) & (array <= 255)):
                raise ValueError("a frame's pixels must be integers in 0..255")
            if not np.array_equal(array, np.floor(array)):
                raise ValueError("a frame's pixels must be integers in 0..255")
            array = array.astype(np.uint8)
        return array

    def preprocess(self, frame: Any) -> np.ndarray:
        """One rendered frame -> one preprocessed frame, uint8 of `image_shape`."""
        from PIL import Image  # Pillow: already a dependency of matplotlib and imageio; imported only for pixels

        array = self.check_frame(frame)[self.top : self.bottom, self.left : self.right]
        image = Image.fromarray(array[:, :, 0] if self.frame_channels == 1 else array)
        if self.grayscale and self.frame_channels == 3:
            image = image.convert("L")  # ITU-R 601-2 luma, Pillow's definition
        if (self.height, self.width) != (array.shape[0], array.shape[1]):
            image = image.resize((self.width, self.height), Image.Resampling.BOX)
        out = np.asarray(image, dtype=np.uint8)
        return out.reshape(self.image_shape)


class FrameStack:
    """The last `frame_stack` preprocessed frames `frame_gap` apart, oldest first: what a pixel policy acts on.
    `reset` starts an episode (the stack holds copies of its first frame), `push` adds the next frame; both return
    the observation."""

    def __init__(self, preprocessing: FramePreprocessing) -> None:
        self.preprocessing = preprocessing
        self._frames: deque[np.ndarray] = deque(maxlen=preprocessing.history)

    def reset(self, frame: Any) -> np.ndarray:
        image = self.preprocessing.preprocess(frame)
        self._frames.clear()
        self._frames.extend([image] * self.preprocessing.history)
        return self.observation()

    def push(self, frame: Any) -> np.ndarray:
        if not self._frames:
            return self.reset(frame)
        self._frames.append(self.preprocessing.preprocess(frame))
        return self.observation()

    def observation(self) -> np.ndarray:
        return np.stack(list(self._frames)[:: self.preprocessing.frame_gap])
