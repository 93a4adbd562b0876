"""Find the files in an image folder that cannot be decoded, once per version of the folder, on all cores."""

import json
import logging
import os
from multiprocessing import get_context
from pathlib import Path

from PIL import Image

from dcgan_lit.data.preprocess import available_cores, cache_key

log = logging.getLogger(__name__)

_IN_PROCESS_BELOW = 2000  # small folders are checked without starting worker processes


def check_image(path: str) -> str | None:
    """None if the file decodes, else why not (truncated, corrupt, not an image at all)."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale, which still reads every byte of the data
            img.load()
        return None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        return f"{type(e).__name__}: {e}"


def unreadable_images(signatures: dict[str, str], root: Path, cache_dir: Path) -> dict[str, str]:
    """{path: reason} for the files that cannot be decoded, cached per file list (file_signatures of the files).

    A cached record is trusted for the files it found good; those it found bad are decoded again every time.
    """
    record = cache_dir / f"{root.name or 'root'}-check-{cache_key(signatures.values(), {'check': 1})}.json"
    if record.is_file():
        # Only the good files' verdicts are reused. The bad ones are few and checked again: a permission fixed
        # with chmod changes neither size nor mtime, so the record alone would keep such a file out for good.
        recorded = json.loads(record.read_text())
        bad = {p: reason for p in recorded if (reason := check_image(p)) is not None}
        if bad != recorded:
            _write(record, bad)
        return bad
    paths = list(signatures)
    if len(paths) < _IN_PROCESS_BELOW:
        reasons = list(map(check_image, paths))
    else:
        log.info(f"checking that {len(paths)} images under {root} decode (once; the result is cached)")
        with get_context("spawn").Pool(available_cores()) as pool:
            reasons = pool.map(check_image, paths, chunksize=256)
    bad = {p: r for p, r in zip(paths, reasons, strict=True) if r is not None}
    _write(record, bad)
    return bad


def _write(record: Path, bad: dict[str, str]) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(bad))
    os.replace(tmp, record)
