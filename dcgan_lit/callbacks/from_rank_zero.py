"""Rank 0's result on every rank, without a collective the other ranks block in while rank 0 works for minutes."""

import json
import time

import torch.distributed as dist
from lightning.pytorch import Trainer

POLL_SECONDS = 0.2


def from_rank_zero(trainer: Trainer, key: str, value: dict | None) -> dict:
    """Rank 0 passes `value` (JSON-able); every rank gets it back. `key` must be new to the process group, which a
    script that fits twice keeps from one fit to the next.

    The other ranks poll the process group's key-value store (the TCPStore that `init_process_group` made) instead
    of waiting in `strategy.broadcast`. A rank blocked in a collective cannot run Python signal handlers, and
    Lightning's SIGTERM handler broadcasts from rank 0 the moment the signal arrives: a rank waiting in the result's
    broadcast would pair that broadcast with the wrong one (a gloo "collective mismatch", exit 1 instead of a
    checkpoint). Polling, each rank runs its own handler, whose broadcast meets rank 0's. It also has no
    collective timeout (30 minutes by default), which a long score on a CPU would pass.
    """
    if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return value
    # Private, but it is the store every rank already shares; a new TCPStore would need a port of its own.
    store = dist.distributed_c10d._get_default_store()
    key = f"dcgan_lit/{key}"
    if trainer.is_global_zero:
        store.set(key, json.dumps(value))
        return value
    while not store.check([key]):  # raises if rank 0, which serves the store, has died
        time.sleep(POLL_SECONDS)
    return json.loads(store.get(key))
