"""Decoding the frames a simulator sends: PNG, NumPy .npy and base64, each checked before it costs memory.

Every decoder answers a uint8 array or raises `protocol.RequestError` (a 4xx) whose message says what was expected
and what came. The checks run in the order that keeps a hostile body cheap:
- PNG: the signature and the IHDR chunk (the first 33 bytes: width, height, bit depth, colour type) are read by
  hand and compared with the frame the policy expects *before* Pillow decodes a pixel, so a header that claims
  100000x100000 pixels (a decompression bomb) costs nothing; Pillow's own bound (`Image.MAX_IMAGE_PIXELS`) stays
  on as a second line. 16-bit, palette, alpha and animated PNGs are refused rather than converted (Pillow would
  silently drop the low byte of 16-bit pixels), and so is a grey PNG for a policy whose frames are RGB, unless
  its preprocessing makes frames grey anyway (then the frame is used as it is: grey in, the same grey out).
- .npy: the header (dtype, shape) is parsed with NumPy's own reader and checked before the data is read; the
  array is then read with `allow_pickle=False`, so an object array is refused and nothing is ever unpickled.
- base64: decoded strictly (`validate=True`), so a truncated or corrupt string is an error, not garbage pixels.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib

import numpy as np

from rlship.frames import FramePreprocessing
from rlship.serving.protocol import RequestError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
PNG_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey with alpha", 6: "RGBA"}
CHANNEL_NAMES = {1: "grey (1 channel)", 3: "RGB (3 channels)"}
MAX_NPY_HEADER = 4096  # NumPy writes 64-128 bytes; its reader allows 10 000 by default
SEND_PNG = "send an 8-bit RGB or grey PNG (e.g. PIL.Image.fromarray(env.render()).save(buffer, 'PNG'))"


def encoded_frame_bound(prep: FramePreprocessing) -> int:
    """The most bytes one encoded frame may take: an uncompressed PNG (a filter byte per row, zlib's stored
    blocks, chunk headers) or a .npy file, plus room for small ancillary chunks."""
    height, width, channels = prep.frame_shape
    raw = height * (width * channels + 1)
    return raw + raw // 1000 + 65536


def decode_frame(data: bytes, prep: FramePreprocessing, what: str = "the frame") -> np.ndarray:
    """One raw frame, uint8 of `prep.frame_shape`, from PNG or .npy bytes (told apart by their signature)."""
    if data.startswith(PNG_SIGNATURE):
        return decode_png(data, prep, what)
    if data.startswith(NPY_MAGIC):
        return read_npy(data, [prep.frame_shape], what)
    head = data[:8]
    raise RequestError(
        422, f"{what} is neither a PNG nor a .npy file (it starts with {head!r}); {SEND_PNG}, or a .npy of uint8"
    )


def decode_base64(text: str, what: str) -> bytes:
    """Strict base64 (a `data:image/png;base64,` prefix is allowed), or 422 saying it is not."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(
            422, f"{what} is not valid base64 ({exc}); send the PNG file's bytes base64-encoded, whole and unwrapped"
        ) from None


def _expected(prep: FramePreprocessing) -> str:
    height, width, channels = prep.frame_shape
    return f"{width}x{height} {CHANNEL_NAMES[channels]}"


def decode_png(data: bytes, prep: FramePreprocessing, what: str = "the frame") -> np.ndarray:
    height, width, channels = prep.frame_shape
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise RequestError(422, f"{what} is not a valid PNG (no IHDR chunk after the signature); {SEND_PNG}")
    # IHDR: width, height, bit depth, colour type, then compression, filter and interlace (Pillow handles those)
    got_width, got_height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if (got_width, got_height) != (width, height):
        raise RequestError(
            422,
            f"{what} is {got_width}x{got_height} pixels; this policy takes raw {_expected(prep)} frames as the env "
            f"renders them (frame shape {list(prep.frame_shape)}, height x width x channels); send the whole "
            "rendered frame: the server crops and resizes it",
        )
    if depth != 8:
        raise RequestError(422, f"{what} has {depth}-bit samples; {SEND_PNG} (8 bits per sample)")
    kind = PNG_COLOUR_TYPES.get(colour, f"colour type {colour}")
    got_channels = {0: 1, 2: 3}.get(colour)
    # a grey frame for an RGB-frame policy only when the preprocessing makes frames grey: luma of grey is grey
    grey_ok = got_channels == 1 and prep.grayscale
    if got_channels != channels and not grey_ok:
        raise RequestError(
            422,
            f"{what} is a {kind} PNG; this policy takes {_expected(prep)} frames. {SEND_PNG} without alpha or "
            "palette, in the expected channels",
        )
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if getattr(image, "is_animated", False):
                raise RequestError(422, f"{what} is an animated PNG; send one frame per request as a plain PNG")
            image.load()
            array = np.asarray(image, dtype=np.uint8)
    except RequestError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error, Image.DecompressionBombError) as exc:
        raise RequestError(422, f"{what} is not a readable PNG ({type(exc).__name__}: {exc}); {SEND_PNG}") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if grey_ok and channels == 3:
        array = np.repeat(array, 3, axis=2)  # the preprocessing's luma of (v, v, v) is v: exact
    if array.shape != prep.frame_shape:  # Pillow and the header disagree: a malformed file
        raise RequestError(422, f"{what} decodes to shape {list(array.shape)}, not {list(prep.frame_shape)}")
    return array


def read_npy(
    data: bytes, shapes: list[tuple[int, ...]], what: str, batch: bool = False, max_rows: int | None = None
) -> np.ndarray:
    """A uint8 array from .npy bytes whose shape is one of `shapes` (with a leading batch axis of 1 to `max_rows`
    if `batch`); the header is checked before the data is read, and the data must be exactly as long as it says."""
    from numpy.lib import format as npy

    stream = io.BytesIO(data)
    try:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read_header(stream, max_header_size=MAX_NPY_HEADER)
    except (ValueError, OSError, SyntaxError, EOFError) as exc:
        raise RequestError(422, f"{what} is not a readable .npy file ({exc}); write it with numpy.save") from None
    described = " or ".join(str(list(s)) for s in shapes)
    if batch:
        described = " or ".join(f"[N, {', '.join(map(str, s))}]" for s in shapes)
    if dtype != np.uint8:
        raise RequestError(422, f"{what} holds {dtype} values; send uint8 pixels (0..255), shape {described}")
    body = tuple(shape[1:]) if batch else tuple(shape)
    if body not in shapes or (batch and len(shape) < 1):
        raise RequestError(422, f"{what} has shape {list(shape)}; this policy takes shape {described}")
    if batch and not 1 <= shape[0] <= (max_rows or shape[0]):
        status = 422 if shape[0] == 0 else 413
        raise RequestError(
            status, f"{what} holds {shape[0]} rows; send 1 to {max_rows} per request (this server's batch limit)"
        )
    count = int(np.prod(shape))
    if len(data) - stream.tell() != count:
        raise RequestError(
            422,
            f"{what} holds {len(data) - stream.tell()} bytes of data; its header (shape {list(shape)}) says {count}",
        )
    array = npy.read_array(io.BytesIO(data), allow_pickle=False)
    if fortran:
        array = np.ascontiguousarray(array)
    return array


def frame_as_png(frame: np.ndarray) -> bytes:
    """A frame as PNG bytes (what a simulator sends): RGB, or grey for a one-channel frame."""
    from PIL import Image

    frame = np.asarray(frame, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(frame[:, :, 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame).save(
        buffer, format="PNG", compress_level=1
    )
    return buffer.getvalue()


def array_as_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.uint8), allow_pickle=False)
    return buffer.getvalue()
