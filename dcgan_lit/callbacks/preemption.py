"""On SIGTERM (SLURM preemption, `kill`, a scheduler's timeout) or Ctrl-C: save a resumable checkpoint, then exit."""

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dcgan_lit.console import info
from dcgan_lit.lightning_internals import in_spawned_rank

log = logging.getLogger(__name__)

REQUEUE_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGUSR1, signal.SIGUSR2)  # Lightning's SLURM requeue signals


class PreemptionCheckpoint(Checkpoint):
    """Like Lightning's OnExceptionCheckpoint, but only for interruptions, and the file is kept.

    It does not subclass OnExceptionCheckpoint: with one of those present, Lightning turns `fit(ckpt_path=None)`
    into `ckpt_path="last"` and silently resumes from whatever last checkpoint the folder holds. It is a
    Checkpoint, which Lightning runs after every other callback, so a checkpoint written at a batch's end holds
    that batch's update of the other callbacks' state too (the EMA of G, the loss history).

    Lightning turns SIGTERM into an exception at the end of the current batch, so the checkpoint holds a whole
    number of batches, mid-epoch included; resuming from it (`ckpt_path=`) runs the rest of the epoch and ends
    with the same number of optimizer steps as an uninterrupted run. Ctrl-C (SIGINT) is sent down the same path:
    Python's own handler would raise KeyboardInterrupt in the middle of the step, between D's update and G's.
    A second Ctrl-C stops at once, saving nothing. Other exceptions save nothing either: the state may be what
    caused them (a NaN loss, say), and the last good checkpoint must stay the newest one.

    Lightning's SLURM requeue handler (trainer=slurm: save hpc_ckpt_N.ckpt, then `scontrol requeue`) would save
    wherever the signal lands, between D's update and G's too; it is deferred to the end of the batch as well.
    The signals reach the DataLoader workers too when the whole process group is signalled (SLURM, `timeout`,
    systemd); those ignore them (data/workers.py) and leave the stopping to this process.

    Args:
        dirpath: folder of the checkpoint.
        filename: its name without `.ckpt`; `last` makes it the run's ordinary resume point.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.ckpt_path = str(Path(dirpath) / f"{filename}.ckpt")
        self.signal: signal.Signals = signal.SIGTERM  # what stopped the run, for its exit message and code
        self._previous: dict[signal.Signals, object] = {}  # handlers replaced in on_train_start, restored after
        self._installed: dict[signal.Signals, Callable] = {}  # what on_train_start put in their place
        self._deferred: list[tuple[Callable, signal.Signals]] = []  # requeue handlers to run at the batch's end
        self._lightning_sigterm: Callable | None = None
        self._sigterm_seen = False
        self._spawned_rank_saved = False

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning has installed its handlers by now; signal handlers can only be set from the main thread.
        if threading.current_thread() is not threading.main_thread():
            return
        self._sigterm_seen = False
        if in_spawned_rank(trainer):
            # Lightning's SIGTERMException is a SystemExit, which ends a spawned rank with code 0 and no result:
            # its main process would wait for that result forever. Exit as a signal ends a process instead.
            atexit.register(self._exit_as_interrupted, trainer)
        self._install(signal.SIGINT, self._on_sigint)
        if callable(sigterm := signal.getsignal(signal.SIGTERM)):
            self._lightning_sigterm = sigterm
            self._install(signal.SIGTERM, self._sigterm_once)
        for signum in REQUEUE_SIGNALS:
            if callable(signal.getsignal(signum)):  # only where Lightning set one (SLURM with auto_requeue)
                self._install(signum, self._defer)

    def _install(self, signum: signal.Signals, handler: Callable) -> None:
        self._previous[signum] = signal.signal(signum, handler)
        self._installed[signum] = handler

    def _sigterm_once(self, signum: int, frame: FrameType | None) -> None:
        # Under DDP each call of Lightning's handler broadcasts from rank 0, and every rank must make as many calls:
        # one. A scheduler signals every rank, and rank 0's handler forwards the signal to the ranks it launched, so
        # those get it twice; a second broadcast on one rank alone pairs with nothing and the run hangs.
        if not self._sigterm_seen:
            self._sigterm_seen = True
            self._lightning_sigterm(signum, frame)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.signal == signal.SIGINT:  # the second Ctrl-C: the user does not want to wait for the batch
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.signal = signal.SIGINT
        info(log, "Ctrl-C: finishing this batch, then saving a checkpoint (Ctrl-C again to stop at once)")
        sigterm = signal.getsignal(signal.SIGTERM)
        if callable(sigterm):
            sigterm(signal.SIGTERM, frame)  # Lightning's handler, once: stop after this batch, on every rank

    def _defer(self, signum: int, frame: FrameType | None) -> None:
        signum = signal.Signals(signum)
        info(log, f"{signum.name}: finishing this batch, then Lightning's SLURM checkpoint and requeue")
        self._deferred.append((self._previous[signum], signum))

    @property
    def requeue_pending(self) -> bool:
        """Whether a requeue signal waits for the end of the current batch."""
        return bool(self._deferred)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        while self._deferred:
            handler, signum = self._deferred.pop(0)
            handler(signum, None)
        if trainer.received_sigterm and not self._spawned_rank_saved and in_spawned_rank(trainer):
            # A spawned rank runs no on_exception (Lightning calls it in the main process, which trains nothing),
            # so it saves here, the state the exception raised before the next batch would have saved.
            self._spawned_rank_saved = True
            self.on_exception(trainer, pl_module, SIGTERMException())

    def _exit_as_interrupted(self, trainer: Trainer) -> None:
        if trainer.received_sigterm:
            for logger in trainer.loggers:
                logger.finalize("failed")
            logging.shutdown()
            os._exit(128 + self.signal)  # the main process reads it as SIGTERM's 143 or Ctrl-C's 130

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous.items():
                # Only where ours is still set: Lightning's own teardown may have put back the handlers it replaced,
                # and putting its handler back over them would chain a finished trainer into the next run's.
                # None: a handler not set from Python, which cannot be put back.
                if handler is not None and signal.getsignal(signum) == self._installed[signum]:
                    signal.signal(signum, handler)
        self._previous, self._installed = {}, {}

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.ckpt_path)
            info(log, f"interrupted: saved {self.ckpt_path} at epoch {trainer.current_epoch}")


def asked_to_stop(trainer: Trainer) -> bool:
    """Whether the run has been told to stop (SIGTERM, Ctrl-C) or to requeue (SLURM's SIGUSR1/2) since it started:
    work that is not training, such as a score that takes minutes on a CPU, gives way so the checkpoint or the
    requeue happens before the scheduler's SIGKILL."""
    requeue = any(isinstance(c, PreemptionCheckpoint) and c.requeue_pending for c in trainer.callbacks)
    return trainer.received_sigterm or requeue


@contextmanager
def signals_left_to_spawned_ranks(trainer: Trainer, spawned: bool) -> Iterator[None]:
    """Around `trainer.fit` in the main process of `trainer.strategy=ddp_spawn*`, which only waits for its ranks:
    SIGTERM and Ctrl-C are left to the ranks, which save and stop as every run does.

    Python's default SIGTERM ended this process at once, its ranks with it, and Ctrl-C made Lightning SIGKILL
    them, both before any checkpoint. A SIGTERM sent to this process alone is passed on (a rank that had it
    already runs Lightning's handler once); Ctrl-C reaches the ranks from the terminal as it reached this process,
    and passing it on would count as the second Ctrl-C, which stops without saving.
    """
    if not spawned or threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave_to_ranks(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            for process in getattr(trainer.strategy.launcher, "procs", []):
                if process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, leave_to_ranks) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
