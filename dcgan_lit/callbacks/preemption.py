"""On SIGTERM (SLURM preemption, `kill`, a scheduler's timeout) or Ctrl-C: save a resumable checkpoint, then exit."""

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)
info = rank_zero_only(log.info)  # under DDP every rank runs this; say it once


class PreemptionCheckpoint(Callback):
    """Like Lightning's OnExceptionCheckpoint, but only for interruptions, and the file is kept.

    It does not subclass OnExceptionCheckpoint: with one of those present, Lightning turns `fit(ckpt_path=None)`
    into `ckpt_path="last"` and silently resumes from whatever last checkpoint the folder holds.

    Lightning turns SIGTERM into an exception at the end of the current batch, so the checkpoint holds a whole
    number of batches, mid-epoch included; resuming from it (`ckpt_path=`) runs the rest of the epoch and ends
    with the same number of optimizer steps as an uninterrupted run. Ctrl-C (SIGINT) is sent down the same path:
    Python's own handler would raise KeyboardInterrupt in the middle of the step, between D's update and G's.
    A second Ctrl-C stops at once, saving nothing. Other exceptions save nothing either: the state may be what
    caused them (a NaN loss, say), and the last good checkpoint must stay the newest one.

    Args:
        dirpath: folder of the checkpoint.
        filename: its name without `.ckpt`; `last` makes it the run's ordinary resume point.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.ckpt_path = str(Path(dirpath) / f"{filename}.ckpt")
        self.signal: signal.Signals = signal.SIGTERM  # what stopped the run, for its exit message and code
        self._previous_sigint: object = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning has installed its SIGTERM handler by now; signal handlers can only be set from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.signal == signal.SIGINT:  # the second Ctrl-C: the user does not want to wait for the batch
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.signal = signal.SIGINT
        info("Ctrl-C: finishing this batch, then saving a checkpoint (Ctrl-C again to stop at once)")
        sigterm = signal.getsignal(signal.SIGTERM)
        if callable(sigterm):
            sigterm(signal.SIGTERM, frame)  # Lightning's handler: stop after this batch, on every rank

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.ckpt_path)
            info(f"interrupted: saved {self.ckpt_path} at epoch {trainer.current_epoch}")
