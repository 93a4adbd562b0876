"""On SIGTERM (SLURM preemption, `kill`, a scheduler's timeout) or Ctrl-C: save a resumable checkpoint, then exit."""

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class PreemptionCheckpoint(Callback):
    """Like Lightning's OnExceptionCheckpoint, but only for interruptions, and the file is kept.

    It does not subclass OnExceptionCheckpoint: with one of those present, Lightning turns `fit(ckpt_path=None)`
    into `ckpt_path="last"` and silently resumes from whatever last checkpoint the folder holds.

    Lightning turns SIGTERM into an exception at the end of the current batch, so the checkpoint holds a whole
    number of batches, mid-epoch included; resuming from it (`ckpt_path=`) runs the rest of the epoch and ends
    with the same number of optimizer steps as an uninterrupted run. Other exceptions save nothing: the state
    may be what caused them (a NaN loss, say), and the last good checkpoint must stay the newest one.

    Args:
        dirpath: folder of the checkpoint.
        filename: its name without `.ckpt`; `last` makes it the run's ordinary resume point.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.ckpt_path = str(Path(dirpath) / f"{filename}.ckpt")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            trainer.save_checkpoint(self.ckpt_path)
            rank_zero_info(f"interrupted: saved {self.ckpt_path} at epoch {trainer.current_epoch}")
