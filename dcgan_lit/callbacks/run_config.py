"""The run's model and data settings, stored in every checkpoint so generate and evaluate need nothing else."""

from lightning.pytorch import Callback, LightningModule, Trainer


class RunConfig(Callback):
    """Writes `config` (plain dicts, so checkpoints still load with weights_only=True) as checkpoint["run_config"].

    Args:
        config: {"model": ..., "data": ...}, the resolved config sections generate and evaluate rebuild G from.
    """

    def __init__(self, config: dict) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        checkpoint["run_config"] = self.config
