"""Errors the user can fix: the entry points print them as one line instead of a traceback."""


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
