"""The header of a safetensors file, read and checked without its data: rlship's one reader of it.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian length N, then N bytes of UTF-8
JSON, an object {tensor name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
data, each tensor's bytes at [begin, end) counted from the end of the header. policy.py checks a policy's weights
file with it before any tensor is read, training/checkpoint.py a checkpoint's tensor file before it reads tensors
straight into their arrays. Each keeps its own error type and words around `HeaderError`'s message, which says
what is wrong in the file. Imports no torch: loading a policy for NumPy must not import it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import IO

from rlship.schema import brief

# safetensors' dtype names (the format's spec) that rlship reads -> (bytes per element, the dtype's name in torch,
# and in NumPy but for bfloat16, which NumPy lacks)
DTYPES: dict[str, tuple[int, str]] = {
    "BOOL": (1, "bool"),
    "U8": (1, "uint8"),
    "I8": (1, "int8"),
    "I16": (2, "int16"),
    "I32": (4, "int32"),
    "I64": (8, "int64"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "F32": (4, "float32"),
    "F64": (8, "float64"),
}
_LENGTH_BYTES = 8
_MAX_NBYTES = 2**64 - 1  # the format's offsets are 64-bit: no tensor takes more


class HeaderError(ValueError):
    """A safetensors header is unreadable, malformed, or describes data the file does not hold."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header describes it."""

    dtype: str  # safetensors' name, a key of DTYPES ("F32")
    shape: tuple[int, ...]
    begin: int  # offset of its first byte in the file (not in the data section, as data_offsets count)
    end: int  # offset one past its last byte


def read_header(file: IO[bytes], max_header_bytes: int, *, check_offsets: bool = True) -> dict[str, TensorEntry]:
    """{tensor name: entry} from the safetensors file open (binary) on `file`, in the header's order,
    `__metadata__` skipped. The header is at most `max_header_bytes`, and is read only after its length is checked
    against that and the file's size (fstat). Every entry's dtype, shape and data_offsets are checked; with
    `check_offsets`, so is that each tensor's bytes lie in the file and are as many as its dtype and shape need
    (`check_data_offsets`: a caller that has a more telling check of the names and shapes makes it first). Any
    failure is a HeaderError."""
    size = os.fstat(file.fileno()).st_size
    if size < _LENGTH_BYTES:
        raise HeaderError(f"the file holds {size} bytes, fewer than the {_LENGTH_BYTES} of the header length")
    length = int.from_bytes(_read(file, 0, _LENGTH_BYTES), "little")
    if length < 2:
        raise HeaderError(f"header length {length} bytes; a header is a JSON object, 2 bytes or more")
    if length > max_header_bytes:
        raise HeaderError(f"header length {length:,} bytes, more than the {max_header_bytes:,} allowed")
    if length > size - _LENGTH_BYTES:
        after = size - _LENGTH_BYTES
        raise HeaderError(f"header length {length:,} bytes, more than the {after:,} after it in the file")
    raw = _read(file, _LENGTH_BYTES, length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and json's errors
        raise HeaderError(f"the header is not UTF-8 JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise HeaderError("the header is nested too deeply to be JSON a safetensors file holds") from None
    if not isinstance(header, dict):
        raise HeaderError("the header is not a JSON object")
    data_start = _LENGTH_BYTES + length
    entries = {name: _entry(name, info, data_start) for name, info in header.items() if name != "__metadata__"}
    if check_offsets:
        check_data_offsets(entries, size)
    return entries


def check_data_offsets(entries: dict[str, TensorEntry], file_size: int) -> None:
    """HeaderError unless each entry's bytes end within a file of `file_size` bytes and are as many as its dtype
    and shape take (they start after the header: `read_header` checked that)."""
    for name, entry in entries.items():
        if entry.end > file_size:
            raise HeaderError(
                f"tensor {brief(name)} lies outside the file: its data ends at byte {entry.end:,} of {file_size:,}"
            )
        span, needed = entry.end - entry.begin, _nbytes(entry)
        if needed != span:
            takes = f"{needed:,} bytes" if needed is not None else f"more than {_MAX_NBYTES:,} bytes"
            raise HeaderError(
                f"tensor {brief(name)} of shape {brief(list(entry.shape))} {entry.dtype} takes {takes}; "
                f"its data_offsets span {span:,}"
            )


def _nbytes(entry: TensorEntry) -> int | None:
    """The bytes `entry`'s dtype and shape take, None beyond _MAX_NBYTES: the product stops there, so a header's
    hundreds of 4,000-digit dimensions cost no more than a few multiplications."""
    if 0 in entry.shape:
        return 0
    nbytes = DTYPES[entry.dtype][0]
    for n in entry.shape:
        nbytes *= n
        if nbytes > _MAX_NBYTES:
            return None
    return nbytes


def _entry(name: str, info: object, data_start: int) -> TensorEntry:
    """`info`, the header's description of tensor `name`, checked field by field."""
    if not isinstance(info, dict):
        raise HeaderError(f"tensor {brief(name)} is described by {brief(info)}, not a JSON object")
    dtype = info.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise HeaderError(f"tensor {brief(name)} has dtype {brief(dtype)}; rlship reads {', '.join(DTYPES)}")
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise HeaderError(
            f"tensor {brief(name)} has no valid shape ({brief(shape)}); a shape is a list of integers >= 0"
        )
    offsets = info.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(n) is int for n in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise HeaderError(
            f"tensor {brief(name)} has data_offsets {brief(offsets)}; they are [begin, end], integers with "
            "0 <= begin <= end"
        )
    return TensorEntry(dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])


def _read(file: IO[bytes], offset: int, n: int) -> bytes:
    """`n` bytes of `file` from `offset` (an unbuffered file may return fewer per read), else a HeaderError."""
    file.seek(offset)
    parts, got = [], 0
    while got < n:
        part = file.read(n - got)
        if not part:
            raise HeaderError(f"the file ends inside its header (at byte {offset + got:,}, {n - got:,} short)")
        parts.append(part)
        got += len(part)
    return b"".join(parts)
