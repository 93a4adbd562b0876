"""Decode, crop and resize every image once, on all cores, into a uint8 (N, nc, S, S) array cached on disk.

The cache file's name carries a key over the source files (relative paths, sizes, mtimes) and the transform
(image_size, nc, crop), so a changed folder or transform builds a new file instead of reusing a stale one.
"""

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

log = logging.getLogger(__name__)

# Bump when the decoding itself changes (e.g. the resize filter), so old caches are not reused.
CACHE_FORMAT = 1


def file_signatures(files: list[Path], root: Path) -> dict[str, str]:
    """{path: relative path, size and mtime}: what the cache keys hash, one stat per file (slow on network disks)."""
    prefix = os.path.join(str(root), "")
    out = {}
    for f in map(str, files):
        st = os.stat(f)
        rel = f[len(prefix) :] if f.startswith(prefix) else os.path.relpath(f, root)
        out[f] = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n"
    return out


def cache_key(signatures: Iterable[str], transform: dict) -> str:
    """A short hash of file signatures (see file_signatures) and the transform's settings."""
    h = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **transform}, sort_keys=True).encode())
    for line in signatures:
        h.update(line.encode())
    return h.hexdigest()[:16]


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def materialize(dataset: Dataset, cache_file: Path, num_workers: int | None = None) -> float:
    """Write every item of `dataset` (uint8 tensors of one shape) into `cache_file` (.npy); returns the seconds taken.

    DataLoader workers decode in parallel; the file appears only when complete (written under a temporary name,
    then renamed), so an interrupted run never leaves a truncated cache behind.
    """
    workers = available_cores() if num_workers is None else num_workers
    start = time.perf_counter()
    first = dataset[0]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(dataset), *first.shape))
    loader = DataLoader(dataset, batch_size=256, num_workers=workers, shuffle=False)
    try:
        i = 0
        for batch in tqdm(loader, desc=f"decoding {len(dataset)} images once ({workers} workers)", unit="batch"):
            out[i : i + len(batch)] = batch.numpy()
            i += len(batch)
        out.flush()
        del out
        os.replace(tmp, cache_file)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    log.info(f"decoded {len(dataset)} images in {seconds:.1f}s into {cache_file}")
    return seconds
