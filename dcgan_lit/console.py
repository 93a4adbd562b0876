"""What the console shows: dcgan_lit's own lines, said once under DDP, the progress bar and warnings to act on."""

import logging
import warnings

from lightning.pytorch.utilities import rank_zero_only


@rank_zero_only
def info(log: logging.Logger, message: str) -> None:
    """`log.info(message)` on rank 0 only: under DDP every rank runs the same code, and each line is said once."""
    log.info(message)


@rank_zero_only
def warning(log: logging.Logger, message: str) -> None:
    """`log.warning(message)` on rank 0 only, for the same reason."""
    log.warning(message)


def quiet_console() -> None:
    """Keep the console to dcgan_lit's lines, the progress bar and warnings a user can act on.

    Lightning's INFO lines (the seed, "GPU available: False", cloud-logging tips, "`Trainer.fit` stopped") go
    through its loggers, lowered to WARNING as Lightning's docs show; dcgan_lit says what matters itself. The
    LeafSpec deprecation comes from Lightning's own use of torch's pytree: nothing a user could change. Nor is
    best.ckpt's "could not find the monitored key" for val/fid or val/kid: those are logged only at scored
    epochs (metrics.every_n_epochs), and the epochs between have none by design.
    """
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # ddp_spawn: "Terminating process N via signal SIGTERM" when one rank has failed; the failure is the line to read
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings(
        "ignore", r"`ModelCheckpoint\(monitor='val/(fid|kid)(_bf16)?'\)` could not find the monitored key"
    )
