"""The one place dcgan_lit reads Lightning (and TensorBoard writer) state that has no public API.

Each function names the private attribute it reads; tests/test_lightning_internals.py fails with that name when
a Lightning release moves it, instead of a run quietly sampling from the wrong generator, resuming at the wrong
batch, or dropping a callback's state from its checkpoints.
"""

import multiprocessing
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from torch.utils.tensorboard import SummaryWriter


def averaged_model(callback: WeightAveraging) -> LightningModule | None:
    """The averaged copy of the LightningModule a WeightAveraging callback keeps; None before fit sets it up.

    Reads `WeightAveraging._average_model` (a torch AveragedModel): Lightning offers no accessor.
    """
    average = getattr(callback, "_average_model", None)
    return None if average is None else average.module


def epoch_position(trainer: Trainer) -> tuple[int, int]:
    """(the epoch training is in or starts next, batches of it already trained), right also just after a resume.

    Reads the fit loop's progress counters, `fit_loop.epoch_progress.current` and
    `fit_loop.epoch_loop.batch_progress.current`. A resumed run creates its first train iterator (and a loader
    with workers draws its shuffle then) before Lightning has called `set_epoch` or fixed up the restored batch
    count, so both are worked out from the counters as the checkpoint left them: a checkpoint written at an
    epoch's end has counted that epoch processed, and the next one starts at batch 0; one written mid-epoch, at
    the end of a batch (on_train_batch_end or an interruption), has counted that batch processed.
    """
    epochs = trainer.fit_loop.epoch_progress.current
    if epochs.processed > epochs.completed:  # saved in on_train_epoch_end: the epoch is over
        return epochs.processed, 0
    return epochs.processed, trainer.fit_loop.epoch_loop.batch_progress.current.processed


def stopped_at(trainer: Trainer) -> str:
    """Where an interrupted fit stopped, for its exit message: `epoch E, batch B` (B batches of epoch E trained), or
    `the end of epoch E` when the signal stopped the epoch-end hooks (a score) after all of epoch E's batches.

    Reads `fit_loop.epoch_progress.current`: an epoch counts as started before its first batch and as completed
    after its end hooks, just before Lightning raises for the signal. In between, the batch counter still holds the
    last epoch's count, which `epoch_position` cannot tell from a mid-epoch position.
    """
    epochs = trainer.fit_loop.epoch_progress.current
    if epochs.started == epochs.completed > 0:
        return f"the end of epoch {epochs.completed - 1}"
    epoch, batch = epoch_position(trainer)
    return f"epoch {epoch}, batch {batch}"


def starts_rank_processes(trainer: Trainer) -> bool:
    """Whether `trainer.fit` trains in rank processes that this process starts and then only waits for
    (`trainer.strategy=ddp_spawn*`, and Lightning's fork strategies). Reads the strategy's launcher class,
    `_MultiProcessingLauncher`; `trainer=ddp`'s launcher runs the command again instead, and this process is rank 0.
    """
    return type(trainer.strategy.launcher).__name__ == "_MultiProcessingLauncher"


def in_spawned_rank(trainer: Trainer) -> bool:
    """Whether this process is one of the ranks that `starts_rank_processes` starts, not the process waiting."""
    return starts_rank_processes(trainer) and multiprocessing.parent_process() is not None


def callback_state_key(callback: Callback, **settings: Any) -> str:
    """A callback's key in `checkpoint["callbacks"]`, built from `settings` the way Lightning builds its own.

    Calls `Callback._generate_state_key`, so two instances of one class with other settings keep apart states,
    and the keys of checkpoints already written still match.
    """
    return callback._generate_state_key(**settings)


def save_unless_saved(checkpoint: ModelCheckpoint, trainer: Trainer) -> None:
    """Save `checkpoint`'s file now, off its cadence, unless it already saved at this global step or would skip it.

    Uses ModelCheckpoint's own bookkeeping and save path (`_last_global_step_saved`, `_should_skip_saving_checkpoint`,
    `_save_topk_checkpoint`, `_monitor_candidates`): the public `trainer.save_checkpoint` would write the file but
    not record it, so the callback's state in the checkpoint would not know it was saved.
    """
    if checkpoint._last_global_step_saved == trainer.global_step or checkpoint._should_skip_saving_checkpoint(trainer):
        return
    checkpoint._save_topk_checkpoint(trainer, checkpoint._monitor_candidates(trainer))


def write_summary(writer: SummaryWriter, summary: Any) -> None:
    """Append a ready-made summary protobuf (such as the HParams tab's) to a TensorBoard event file.

    Uses `SummaryWriter._get_file_writer()`: the public `add_*` methods each build their own summary, and
    `add_hparams` would also write every metric again at step 0.
    """
    writer._get_file_writer().add_summary(summary)
