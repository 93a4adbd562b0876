"""When a callback that acts every N epochs also acts: at the run's last epoch, so no run ends without the scores,
the sample grid and the checkpoint of its final weights."""

from lightning.pytorch import Trainer


def ends_run(trainer: Trainer) -> bool:
    """Whether the epoch that just ended is the run's last: `trainer.max_epochs` reached, or a stop requested."""
    limit = trainer.max_epochs
    return trainer.should_stop or (limit not in (None, -1) and trainer.current_epoch + 1 >= limit)
