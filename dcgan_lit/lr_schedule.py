"""Learning-rate schedules per batch: constant, or a linear decay to zero over the end of training.

    python -m dcgan_lit.train model.lr_decay_start=0.5     # both rates fall linearly to 0 over the second half

Short GAN schedules often end with the rates decayed to zero (SNGAN and BigGAN reimplementations, CycleGAN's
last half), so that G's last weights are an average over smaller steps rather than the noisiest ones.
"""

from lightning.pytorch import Trainer
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from dcgan_lit.errors import ConfigError


def total_batches(trainer: Trainer, optimizer_steps_per_batch: int) -> int:
    """The batches this fit trains: max_epochs of the loader, or fewer when max_steps stops it (the Trainer's
    max_steps counts optimizer steps; train.py sets it from trainer.max_steps, which counts batches).

    Not `trainer.estimated_stepping_batches` alone, which counts max_steps as batches: with manual optimization
    each batch is several of Lightning's steps (one per optimizer.step()). Reading it loads the train loader, as
    Lightning documents for configure_optimizers, after which num_training_batches is the loader's length.
    """
    trainer.estimated_stepping_batches  # noqa: B018  loads the loader
    per_epoch, epochs, max_steps = trainer.num_training_batches, trainer.max_epochs, trainer.max_steps
    by_epochs = per_epoch * epochs if epochs is not None and epochs >= 0 and per_epoch != float("inf") else None
    by_steps = max_steps // optimizer_steps_per_batch if max_steps is not None and max_steps >= 0 else None
    bounds = [int(b) for b in (by_epochs, by_steps) if b is not None]
    if not bounds:
        raise ConfigError(
            "model.lr_decay_start needs a known end of training: set trainer.max_epochs or trainer.max_steps."
        )
    return min(bounds)


def check_decay_start(start: float | None) -> None:
    if start is not None and not 0.0 <= start < 1.0:
        raise ConfigError(
            f"model.lr_decay_start={start}: the fraction of training after which the rates decay to 0; "
            "must be in [0, 1), or null for constant rates."
        )


def linear_decay(optimizer: Optimizer, start: float, total: int) -> LambdaLR:
    """A per-batch LambdaLR: the optimizer's rate until `start` (a fraction of the `total` batches), then
    linearly down to 0 at `total`.

    The factor is a function, not a callable object: LambdaLR saves an object's attributes in the checkpoint, and
    a run resumed with another trainer.max_epochs must decay to its own end. The checkpoint keeps the batch count.
    """
    first = int(start * total)

    def factor(batch: int) -> float:
        return 1.0 if batch < first else max(0.0, (total - batch) / (total - first))

    return LambdaLR(optimizer, factor)


def resume_at_own_rate(scheduler: LambdaLR) -> None:
    """Set the optimizer's rates to the schedule's at the restored batch count.

    A resumed run restores the optimizer's rates as the checkpoint left them (0 at the end of a finished decay);
    with a new trainer.max_epochs the schedule's own factor at that batch differs, and the next step must use it.
    """
    for group, base, factor in zip(
        scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
    ):
        group["lr"] = base * factor(scheduler.last_epoch)
