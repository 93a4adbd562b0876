"""Where the entry points write: checked at start-up, so no result is computed and then lost for want of a folder."""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dcgan_lit.errors import ConfigError

log = logging.getLogger(__name__)


def _probe(folder: Path) -> None:
    """Raise OSError unless a file can be created in `folder` (a real write: permission bits do not bind root)."""
    probe = folder / f".write_test.{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def writable_folder(folder: str | Path, key: str) -> Path:
    """`folder`, created if missing, once a file has been written into it; else a ConfigError naming `key`."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)
    except OSError as e:
        raise ConfigError(
            f"{key}={str(folder)!r}: cannot write there ({e.strerror or e}); point {key} at a writable folder."
        ) from e
    return path


def writable_file(file: str | Path, key: str) -> Path:
    """`file`, once its folder is known to exist and take new files; else a ConfigError naming `key` and the folder."""
    path = Path(file).expanduser()
    folder = path.parent
    if path.is_dir():
        raise ConfigError(f"{key}={str(file)!r} is a folder; give a file name, e.g. {key}={path / 'out'}.")
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"{key}={str(file)!r}: the folder {folder} {what}; create it or choose another {key}=.")
    try:
        _probe(folder)
    except OSError as e:
        raise ConfigError(
            f"{key}={str(file)!r}: cannot write into {folder} ({e.strerror or e}); choose another {key}=."
        ) from e
    return path


@contextmanager
def skip_on_write_error(what: str | Path) -> Iterator[None]:
    """Turn an OSError (a full disk, a read-only folder) while writing `what` into one warning line.

    For sample grids and figures: losing one is no reason to stop training before the next checkpoint. A
    checkpoint that cannot be written still stops the run, with its own one-line error (checkpoint_io.py).
    """
    try:
        yield
    except OSError as e:
        log.warning(f"cannot write {what} ({e.strerror or e}); skipped it, training and checkpoints go on")
