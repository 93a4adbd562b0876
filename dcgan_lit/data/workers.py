"""DataLoader workers that leave stopping to the main process.

SLURM's scancel and preemption, `timeout`, systemd (KillMode=control-group) and a terminal's Ctrl-C signal every
process of the job, workers included. torch's workers die on SIGTERM, and the main process then fails mid-step
with "DataLoader worker (pid N) is killed by signal: Terminated", before it can finish the batch and save. So the
workers set these signals aside: the main process finishes its batch, saves, and shuts the workers down itself.

One SIGTERM still ends a worker: its own main process's (multiprocessing's `terminate()`, which the loader and
Python's exit use when a worker does not stop by itself), told apart by the sender's pid, as torch's own
handler does. Without that, a main process that lost its loader iterator to an error would wait forever at exit
for workers that ignore it. Workers whose main process is gone (SIGKILL) still exit on their own: torch's
worker loop checks that its parent is alive.
"""

import os
import signal
import threading

from lightning.fabric.utilities.seed import pl_worker_init_function

HANDLED_BY_THE_MAIN_PROCESS: frozenset[signal.Signals] = frozenset(
    {
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGUSR1,  # Lightning's default SLURM requeue signal
        signal.SIGUSR2,  # trainer=slurm's (submitit's warning before the time limit)
    }
)


def worker_init(worker_id: int) -> None:
    """DataLoader worker_init_fn: set the stop signals aside (see the module's docstring), then seed the worker as
    Lightning would have."""
    # Blocked in this thread, the worker's only one at this point, and so in every thread started later: the
    # signals then wait for set_aside() instead of running a handler (torch's kills the worker on SIGTERM).
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_BY_THE_MAIN_PROCESS)
    threading.Thread(target=set_aside, args=(os.getppid(),), name="stop-signals", daemon=True).start()
    # Lightning adds its own worker seeding (seed_everything(workers=True)) only to loaders without a worker_init_fn.
    if os.environ.get("PL_SEED_WORKERS") == "1":
        pl_worker_init_function(worker_id)


def set_aside(main_pid: int) -> None:
    """Take the blocked stop signals as they come; exit only on a SIGTERM from the main process itself."""
    while True:
        info = signal.sigwaitinfo(HANDLED_BY_THE_MAIN_PROCESS)
        if info.si_signo == signal.SIGTERM and info.si_pid == main_pid:
            os._exit(0)  # what torch's worker does on its parent's SIGTERM
