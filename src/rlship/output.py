"""A command's result on stdout, in one place: a stdout that cannot take it (a full disk, /dev/full, a terminal
that went away) is an `OutputError`, which `rlship` reports in one line, not a traceback."""

from __future__ import annotations

from rlship.errors import RlshipError


class OutputError(RlshipError):
    """stdout refused a command's result. (A reader that left, `| head`, is a BrokenPipeError instead: the
    command then ends quietly, as Unix tools do.)"""

    def __init__(self, exc: OSError, written: str | None = None) -> None:
        message = f"cannot write output: {exc.strerror or exc}"
        super().__init__(message if written is None else f"{message}; {written}")


def print_result(text: str, written: str | None = None) -> None:
    """Print `text` and a newline on stdout, flushed now, so that a failure to write it is raised here, where it is
    reported, rather than by the interpreter's flush at exit (or by the first print of an unbuffered stdout).

    `written`: what the command wrote before its report (a run folder), for the error to say: only the report is
    lost, not the work, which a person who sees "error" and exit 1 would otherwise run again."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(exc, written) from exc


__all__ = ["OutputError", "print_result"]
