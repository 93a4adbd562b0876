"""Checkpoint files that are either complete or absent: written to a temporary name, synced, then renamed.

Lightning's own TorchCheckpointIO writes the final path in place, so a job killed during a save (SIGKILL,
an out-of-memory kill, a node failure) can leave a truncated last.ckpt behind and lose the run. Here a kill
at any moment leaves the previous file untouched, and a full or read-only disk is a one-line error.
"""

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dcgan_lit.errors import CheckpointError


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are atomic (temporary file + fsync + os.replace)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never a mix
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise CheckpointError(
                f"cannot write the checkpoint {path}: {e.strerror or e}. Nothing already saved was changed; "
                f"free space in (or fix the permissions of) {path.parent}, then resume from the last checkpoint."
            ) from e
