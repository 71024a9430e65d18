"""The errors rlship raises on purpose: each one says what is wrong and what to do about it."""

from __future__ import annotations


class RlshipError(Exception):
    """Base class of every error rlship raises deliberately."""


class ArtifactError(RlshipError):
    """A policy folder is missing a file, or a file in it is corrupt or of an unknown format."""


class ObservationError(RlshipError, ValueError):
    """Observations given to a policy do not match its observation space."""


class UnsupportedEnvError(RlshipError):
    """The environment (or its spaces) is not one this algorithm can train on."""


class UsageError(RlshipError, ValueError):
    """An argument, flag, hyperparameter or setting is malformed or out of range; the message names it and says
    what is allowed. (A ValueError too, so callers that caught ValueError before keep working.)"""


class TrainingDiverged(RlshipError):
    """Training produced a number that is not finite (a loss, a network weight, a network output), so the run
    cannot go on. Raised with what was found; `Run` (training/run.py) adds where (the env step), which flags to
    lower and what the run folder keeps."""
