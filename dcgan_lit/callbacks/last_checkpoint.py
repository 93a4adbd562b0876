"""checkpoints/last.ckpt after every epoch, beside a ModelCheckpoint that keeps periodic ones."""

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from dcgan_lit.callbacks.cadence import ends_run
from dcgan_lit.lightning_internals import callback_state_key, save_unless_saved


class LastCheckpoint(ModelCheckpoint):
    """Overwrites `dirpath/last.ckpt` every `every_n_epochs` epochs, and after the last epoch whatever its number, so
    a run always ends with a last.ckpt of its final weights (every_n_epochs=10 over 15 epochs saves at 10 and 15).

    ModelCheckpoint(save_last=True) only refreshes last.ckpt when it also saves a periodic checkpoint, so a
    resumable file every epoch needs a second instance. Lightning tells instances apart by a state key built
    from monitor and frequency only; this one adds the filename, so both can use every_n_epochs=1.
    """

    def __init__(self, dirpath: str, every_n_epochs: int | None = 1, every_n_train_steps: int | None = None) -> None:
        """every_n_train_steps counts Lightning's optimizer steps, two per GAN batch (None: not by steps)."""
        super().__init__(
            dirpath=dirpath,
            filename="last",
            every_n_epochs=every_n_epochs,
            every_n_train_steps=every_n_train_steps,
            save_top_k=1,
            enable_version_counter=False,
        )
        # ModelCheckpoint's own normalization of the two triggers, for the key below.
        if every_n_epochs is None and every_n_train_steps is None:
            every_n_epochs, every_n_train_steps = 1, 0
        triggers = {"every_n_epochs": every_n_epochs or 0, "every_n_train_steps": every_n_train_steps or 0}
        self._key_settings = {"filename": "last", **triggers}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if ends_run(trainer):
            save_unless_saved(self, trainer)

    @property
    def state_key(self) -> str:
        # Built as Lightning builds its own keys (class name, then settings), so existing checkpoints still match.
        return callback_state_key(self, **self._key_settings)
