"""Hydra sweepers for dcgan_lit: a failed job of a sweep is one failed job, not the end of the sweep.

Hydra loads sweepers only from the `hydra_plugins` namespace, hence this package beside `dcgan_lit/`. A job fails
by raising (train.run raises JobFailed), so Hydra records it with JobReturn status FAILED; these sweepers then go
on with the other jobs and list the failed ones at the end, one line each.
"""

import sys
from collections.abc import Sequence
from typing import NoReturn

from hydra.core.utils import JobReturn, JobStatus


def exit_failed(summary: str) -> NoReturn:
    """Print the summary on stderr and exit 1. Not an exception: Hydra would add a hint about a stack trace that
    this summary does not have."""
    print(summary, file=sys.stderr)
    sys.exit(1)


def failed(returns: Sequence[JobReturn]) -> list[JobReturn]:
    return [r for r in returns if r.status == JobStatus.FAILED]


def failure_lines(returns: Sequence[JobReturn]) -> list[str]:
    """One line per failed job: its number, the overrides that set it apart, its run folder and why it failed."""
    common = set.intersection(*(set(r.overrides or ()) for r in returns)) if returns else set()
    lines = []
    for r in failed(returns):
        job = r.hydra_cfg.hydra.job
        own = " ".join(o for o in r.overrides or () if o not in common)
        # JobReturn.return_value raises the job's exception (after printing its overrides); the field holds it.
        reason = str(r._return_value).strip().splitlines()[-1]
        lines.append(f"  #{job.num} {own} ({r.hydra_cfg.hydra.runtime.output_dir}): {reason}")
    return lines
