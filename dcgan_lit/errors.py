"""Errors the user can fix: the entry points print them as one line instead of a traceback."""

import re
import signal
import sys
from typing import NoReturn

from torch.multiprocessing.spawn import ProcessRaisedException

# What torch's DataLoader puts before an exception it raises again in the main process (ExceptionWrapper.reraise):
# "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last): ..."
_WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):"


class UserError(Exception):
    """Base class for bad configs, bad data locations and bad checkpoints."""

    def __init__(self, message: str = "") -> None:
        if _WORKER_TRACEBACK in message:  # raised in a DataLoader worker: keep the message, not the worker's traceback
            message = message.rstrip().splitlines()[-1].partition(": ")[2] or message
        super().__init__(message)


class ConfigError(UserError):
    """A config value that cannot work; the message starts with the key."""


class DataError(UserError):
    """A data set that cannot be found or read; the message names the path."""


class CheckpointError(UserError):
    """A checkpoint that cannot be written, read, or used with this config; the message says what to do."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the message names the batch and the loss."""


def raised_in_a_spawned_rank(e: BaseException) -> UserError | None:
    """The UserError a rank of `trainer.strategy=ddp_spawn*` raised, rebuilt from the traceback text that torch's
    ProcessRaisedException carries to the main process (the exception itself does not cross); None for any other
    error. Without it a diverged loss in a spawned rank was a 60-line traceback and exit code 1."""
    if not isinstance(e, ProcessRaisedException):
        return None
    raised = re.findall(rf"^{__name__}\.(\w+): (.*)$", str(e), flags=re.MULTILINE)
    if not raised:
        return None
    name, message = raised[-1]
    error = globals().get(name)
    return error(message) if isinstance(error, type) and issubclass(error, UserError) else None


class Interrupted(Exception):
    """SIGTERM, Ctrl-C or the like stopped training after a whole batch; the message says where it was saved."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(signum, message)
        self.signum, self.message = signum, message

    def __str__(self) -> str:
        return self.message


class JobFailed(Exception):
    """A job of a multirun sweep that failed, its one-line reason already printed and written to its run folder.

    Raised rather than exiting, so that Hydra records the job as failed (JobReturn status FAILED, an Optuna trial in
    state FAIL) and the sweep goes on with the next job.
    """


def exit_with(error: BaseException, code: int = 2) -> NoReturn:
    """Print `error` as one line on stderr and exit: a message to act on, not a traceback."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(code)


def exit_on_ctrl_c(what: str) -> NoReturn:
    """Ctrl-C in a command that keeps no state (evaluate, generate): one line saying what it leaves, not the
    traceback of whatever op it landed in, and Ctrl-C's exit code, 130."""
    print(f"interrupted by Ctrl-C: {what}", file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
