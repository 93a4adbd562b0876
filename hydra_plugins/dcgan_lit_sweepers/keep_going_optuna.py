"""Hydra's Optuna sweeper, going on past failed trials: `python -m dcgan_lit.train -m hparams_search=optuna`.

A trial that fails (a diverged loss, a misconfiguration) is recorded in the study as Optuna's FAIL state, not as
a made-up worst value: it has no FID, and the study's best trial, its plots and its table then hold measured
scores only. The search goes on to n_trials (max_failure_rate: 1.0 in conf/hydra/sweeper/keep_going_optuna.yaml).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.dcgan_lit_sweepers import exit_failed, failed, failure_lines

log = logging.getLogger(__name__)


@dataclass
class QuietJobReturn(JobReturn):
    """A JobReturn whose return_value raises a failed job's exception without first printing all of the job's
    overrides (the job has printed its one-line reason, and the sweeper logs it again)."""

    @property
    def return_value(self) -> Any:
        if self.status == JobStatus.FAILED:
            raise self._return_value
        return self._return_value


class RecordingLauncher(Launcher):
    """The sweep's launcher, keeping every JobReturn for the summary (the Optuna sweeper keeps only values)."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.returns: list[JobReturn] = []

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.launcher.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        launched = self.launcher.launch(job_overrides, initial_job_idx)
        returns = [QuietJobReturn(**{f.name: getattr(r, f.name) for f in fields(r)}) for r in launched]
        self.returns.extend(returns)
        return returns


class KeepGoingOptunaSweeper(Sweeper):
    """Hydra's OptunaSweeper, listing its failed trials at the end, and ending in one line when none completed.

    Takes OptunaSweeper's arguments. It wraps one rather than subclassing it, so that Hydra, which imports every
    module of hydra_plugins at start-up, imports the Optuna sweeper only when a search uses it: without the
    `sweep` extra, other runs would warn about this plugin.
    """

    def __init__(self, **optuna_sweeper_args: Any) -> None:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

        self.optuna = OptunaSweeper(**optuna_sweeper_args)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.optuna.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.recorder = RecordingLauncher(self.optuna.sweeper.launcher)
        self.optuna.sweeper.launcher = self.recorder

    def sweep(self, arguments: list[str]) -> None:
        try:
            result = self.optuna.sweep(arguments)
        except Exception:
            returns = self.recorder.returns
            if not failed(returns):
                raise
            lines = "\n".join(failure_lines(returns))
            if not any(r.status == JobStatus.COMPLETED for r in returns):  # Optuna: "No trials are completed yet"
                exit_failed(f"all {len(returns)} trials failed, so the search has no best trial:\n{lines}")
            # max_failure_rate was lowered, and the search stopped at a failed trial
            rate = self.optuna.sweeper.max_failure_rate
            exit_failed(f"the search stopped, over hydra.sweeper.max_failure_rate={rate}:\n{lines}")
        returns = self.recorder.returns
        if failed(returns):
            lines = "\n".join(failure_lines(returns))
            log.warning(f"{len(failed(returns))} of {len(returns)} trials failed (state FAIL in the study):\n{lines}")
        return result
