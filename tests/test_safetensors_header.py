"""rlship.safetensors_header, the one reader of a safetensors header (policy weights and checkpoint tensor files):
real files, written by safetensors or byte by byte, each malformed one refused with a HeaderError that says what
is wrong."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from rlship.safetensors_header import DTYPES, HeaderError, TensorEntry, check_data_offsets, read_header

LIMIT = 1024 * 1024


def write_raw(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    """A file of the format's layout: the 8-byte length (`length`, else the header's own), the JSON, `data`."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def read(path: Path, limit: int = LIMIT, check_offsets: bool = True) -> dict[str, TensorEntry]:
    with path.open("rb") as f:
        return read_header(f, limit, check_offsets=check_offsets)


def refusal(path: Path, limit: int = LIMIT) -> str:
    with pytest.raises(HeaderError) as info:
        read(path, limit)
    return str(info.value)


def test_a_file_safetensors_wrote_is_read_with_absolute_offsets_and_metadata_skipped(tmp_path: Path) -> None:
    arrays = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "steps": np.array([7], dtype=np.int64),
        "empty": np.zeros((0, 4), dtype=np.float64),
        "mask": np.array([True, False, True]),
    }
    path = tmp_path / "t.safetensors"
    save_file(arrays, str(path), metadata={"format": "pt", "note": "x"})
    entries = read(path)
    assert set(entries) == set(arrays)  # no "__metadata__"
    data = path.read_bytes()
    for name, array in arrays.items():
        entry = entries[name]
        assert entry.shape == array.shape and entry.end - entry.begin == array.nbytes
        assert entry.dtype == {"float32": "F32", "int64": "I64", "float64": "F64", "bool": "BOOL"}[str(array.dtype)]
        assert data[entry.begin : entry.end] == array.tobytes()  # begin/end count from the file's start


def test_the_dtype_table_agrees_with_torch_and_numpy() -> None:
    for name, (size, dtype_name) in DTYPES.items():
        assert getattr(torch, dtype_name).itemsize == size, name
        if dtype_name != "bfloat16":
            assert np.dtype(dtype_name).itemsize == size, name


@pytest.mark.parametrize("size", [0, 5])
def test_a_file_shorter_than_the_length_prefix(tmp_path: Path, size: int) -> None:
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"\1" * size)
    assert refusal(path) == f"the file holds {size} bytes, fewer than the 8 of the header length"


def test_a_header_length_beyond_the_file(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "t.safetensors", b"{}", length=100)  # a file cut short inside its header
    assert refusal(path) == "header length 100 bytes, more than the 2 after it in the file"


@pytest.mark.parametrize("length", [2**60, 2**64 - 1, LIMIT + 1])
def test_a_header_length_beyond_the_limit_is_refused_before_it_is_read(tmp_path: Path, length: int) -> None:
    path = write_raw(tmp_path / "t.safetensors", b"{}", length=length)
    assert refusal(path) == f"header length {length:,} bytes, more than the {LIMIT:,} allowed"


def test_the_limit_is_the_callers(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "t.safetensors", {"__metadata__": {"note": "x" * 100}})
    length = path.stat().st_size - 8
    assert read(path) == {}  # only metadata: no tensors
    assert refusal(path, limit=length - 1) == f"header length {length} bytes, more than the {length - 1} allowed"


@pytest.mark.parametrize("length", [0, 1])
def test_a_header_length_too_short_for_json(tmp_path: Path, length: int) -> None:
    path = write_raw(tmp_path / "t.safetensors", b"{}", length=length)
    assert refusal(path) == f"header length {length} bytes; a header is a JSON object, 2 bytes or more"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"[]", "the header is not a JSON object"),
        (b'"tensors"', "the header is not a JSON object"),
        (b"12", "the header is not a JSON object"),
        (b"{{{{{", "the header is not UTF-8 JSON (Expecting property name"),
        (b'{"a": \xff}', "the header is not UTF-8 JSON ('utf-8' codec can't decode byte 0xff"),
        (b"[" * 100_000 + b"]" * 100_000, "the header is nested too deeply"),
    ],
)
def test_a_header_that_is_not_a_json_object(tmp_path: Path, raw: bytes, expected: str) -> None:
    assert refusal(write_raw(tmp_path / "t.safetensors", raw)).startswith(expected)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ([1, 2], "tensor 'w' is described by [1, 2], not a JSON object"),
        ({"shape": [1], "data_offsets": [0, 4]}, "tensor 'w' has dtype None; rlship reads BOOL, U8, I8,"),
        ({"dtype": "F128", "shape": [1], "data_offsets": [0, 4]}, "tensor 'w' has dtype 'F128'; rlship reads"),
        ({"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}, "tensor 'w' has dtype 'f32'; rlship reads"),
        ({"dtype": 4, "shape": [1], "data_offsets": [0, 4]}, "tensor 'w' has dtype 4; rlship reads"),
    ],
)
def test_a_tensor_without_a_dtype_rlship_reads(tmp_path: Path, info: Any, expected: str) -> None:
    message = refusal(write_raw(tmp_path / "t.safetensors", {"w": info}, b"\0" * 4))
    assert message.startswith(expected), message


@pytest.mark.parametrize("shape", [[-1], [2, -3], [2.0], [True], ["2"], "big", None, {"n": 2}, [[2]]])
def test_a_negative_or_non_integer_shape(tmp_path: Path, shape: Any) -> None:
    path = write_raw(tmp_path / "t.safetensors", {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 8]}})
    message = refusal(path)
    assert message.startswith("tensor 'w' has no valid shape (") and "a shape is a list of integers >= 0" in message


@pytest.mark.parametrize("offsets", [[4, 0], [-4, 0], [0], [0, 4, 8], [0.0, 4.0], ["0", "4"], "0-4", None])
def test_data_offsets_that_are_not_begin_and_end(tmp_path: Path, offsets: Any) -> None:
    path = write_raw(tmp_path / "t.safetensors", {"w": {"dtype": "F32", "shape": [1], "data_offsets": offsets}})
    message = refusal(path)
    assert message.startswith("tensor 'w' has data_offsets ") and "integers with 0 <= begin <= end" in message


def test_offsets_outside_the_file(tmp_path: Path) -> None:
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    header["b"] = {"dtype": "F32", "shape": [1000], "data_offsets": [8, 4008]}
    path = write_raw(tmp_path / "t.safetensors", header, b"\0" * 12)
    size = path.stat().st_size
    end = size - 12 + 4008
    assert refusal(path) == f"tensor 'b' lies outside the file: its data ends at byte {end:,} of {size:,}"


@pytest.mark.parametrize(
    ("dtype", "shape", "offsets", "expected"),
    [
        ("F32", [2], [0, 4], "tensor 'w' of shape [2] F32 takes 8 bytes; its data_offsets span 4"),
        ("F64", [2], [0, 8], "tensor 'w' of shape [2] F64 takes 16 bytes; its data_offsets span 8"),
        ("U8", [3, 0], [0, 8], "tensor 'w' of shape [3, 0] U8 takes 0 bytes; its data_offsets span 8"),
        # a huge shape over a few bytes: the header's claim, refused before anything is allocated from it
        ("F32", [10**6, 10**6], [0, 8], "tensor 'w' of shape [1000000, 1000000] F32 takes 4,000,000,000,000 bytes"),
        ("U8", [2**32, 2**32], [0, 8], "tensor 'w' of shape [4294967296, 4294967296] U8 takes more than 18,446,"),
        # 200 dimensions of 4,000 digits each: the product is cut short, not computed (800,000 digits)
        ("F32", [10**4000] * 200, [0, 8], "tensor 'w' of shape a list of 200 items F32 takes more than 18,446,"),
    ],
)
def test_offsets_that_do_not_match_dtype_and_shape(
    tmp_path: Path, dtype: str, shape: list[int], offsets: list[int], expected: str
) -> None:
    path = write_raw(tmp_path / "t.safetensors", {"w": {"dtype": dtype, "shape": shape, "data_offsets": offsets}})
    path.write_bytes(path.read_bytes() + b"\0" * 16)
    assert refusal(path).startswith(expected)


def test_offsets_are_checked_later_when_the_caller_asks(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "t.safetensors", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
    entries = read(path, check_offsets=False)  # policy.py compares names and shapes with its network first
    assert entries == {"w": TensorEntry("F32", (4,), path.stat().st_size, path.stat().st_size + 16)}
    with pytest.raises(HeaderError, match="tensor 'w' lies outside the file"):
        check_data_offsets(entries, path.stat().st_size)


def test_a_hostile_name_is_shown_short_and_escaped(tmp_path: Path) -> None:
    name = "\x1b[31m" + "w" * 100_000
    path = write_raw(tmp_path / "t.safetensors", {name: {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}})
    message = refusal(path)
    assert message.startswith("tensor '\\x1b[31mwww") and len(message) < 300, message


def test_an_unbuffered_file_is_read_whole(tmp_path: Path) -> None:
    """The checkpoint reader hands an unbuffered file (`readinto` into tensors' memory): same entries."""
    path = tmp_path / "t.safetensors"
    save_file({"x": np.ones((3, 5), np.float32)}, str(path))
    with path.open("rb", buffering=0) as f:
        assert read_header(f, LIMIT) == read(path)
