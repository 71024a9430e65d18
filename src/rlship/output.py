"""A command's result on stdout, in one place: a stdout that cannot take it (a full disk, /dev/full, a terminal
that went away) is an `OutputError`, which `rlship` reports in one line, not a traceback."""

from __future__ import annotations

from rlship.errors import RlshipError


class OutputError(RlshipError):
    """stdout refused a command's result. (A reader that left, `| head`, is a BrokenPipeError instead: the
    command then ends quietly, as Unix tools do.)"""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"cannot write output: {exc.strerror or exc}")


def print_result(text: str) -> None:
    """Print `text` and a newline on stdout, flushed now, so that a failure to write it is raised here, where it is
    reported, rather than by the interpreter's flush at exit (or by the first print of an unbuffered stdout)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(exc) from exc


__all__ = ["OutputError", "print_result"]
