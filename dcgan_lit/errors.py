"""Errors the user can fix: the entry points print them as one line instead of a traceback."""

import sys
from typing import NoReturn


class UserError(Exception):
    """Base class for bad configs, bad data locations and bad checkpoints."""


class ConfigError(UserError):
    """A config value that cannot work; the message starts with the key."""


class DataError(UserError):
    """A data set that cannot be found or read; the message names the path."""


class CheckpointError(UserError):
    """A checkpoint that cannot be written, read, or used with this config; the message says what to do."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the message names the batch and the loss."""


def exit_with(error: BaseException, code: int = 2) -> NoReturn:
    """Print `error` as one line on stderr and exit: a message to act on, not a traceback."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(code)
