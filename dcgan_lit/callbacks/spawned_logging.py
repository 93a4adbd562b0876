"""The main process's logging, set up again in the ranks that a spawn launcher starts with none."""

import logging
import sys

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_only

from dcgan_lit.console import quiet_console

STREAMS = {"stdout": sys.stdout, "stderr": sys.stderr}


class SpawnedLogging(Callback):
    """Carries the main process's log handlers (Hydra's: the console and the run's `train.log`) into the ranks of
    `trainer.strategy=ddp_spawn*`.

    Those ranks are fresh interpreters that unpickle the trainer, so Hydra never sets up their logging: every line
    said during training (the scores, the copy check's and mode collapse's warnings, the data's lines) was lost,
    and Lightning's INFO lines and deprecation notes, which train.py quiets, came back. Unpickled in such a rank,
    this callback rebuilds the handlers, with their formats and levels, and quiets the console again. The lines
    of rank 0 alone are kept, as `console.info` says them: the other ranks repeat them.
    """

    def __init__(self) -> None:
        root = logging.getLogger()
        self.level = root.level
        self.handlers: list[tuple[str, str, logging.Formatter | None, int]] = []
        for handler in root.handlers:
            if isinstance(handler, logging.FileHandler):
                self.handlers.append(("file", handler.baseFilename, handler.formatter, handler.level))
            elif isinstance(handler, logging.StreamHandler):
                name = next((n for n, s in STREAMS.items() if handler.stream is s), None)
                if name is not None:
                    self.handlers.append(("stream", name, handler.formatter, handler.level))

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        root = logging.getLogger()
        if root.handlers:  # not a fresh interpreter: a copy made in the main process
            return
        for kind, target, formatter, level in self.handlers:
            handler = logging.FileHandler(target) if kind == "file" else logging.StreamHandler(STREAMS[target])
            handler.setFormatter(formatter)
            handler.setLevel(level)
            handler.addFilter(lambda record: rank_zero_only.rank == 0)
            root.addHandler(handler)
        root.setLevel(self.level)
        quiet_console()
