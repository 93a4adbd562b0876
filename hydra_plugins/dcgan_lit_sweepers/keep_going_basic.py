"""Hydra's basic sweeper, going on past failed jobs: `python -m dcgan_lit.train -m model.lr_g=1e-4,2e-4`."""

from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from hydra_plugins.dcgan_lit_sweepers import exit_failed, failed, failure_lines


class KeepGoingSweeper(BasicSweeper):
    """BasicSweeper.sweep without its check after each batch, which raised the first failed job's exception and so
    ended the sweep; every job runs, then the failed ones are listed and the sweep exits 1."""

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params_conf), self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        batches: list[list[JobReturn]] = []
        job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            batches.append(list(self.launcher.launch(batch, initial_job_idx=job_idx)))
            job_idx += len(batch)

        returns = [r for batch in batches for r in batch]
        if failed(returns):
            lines = failure_lines(returns)
            exit_failed(f"{len(lines)} of {len(returns)} jobs failed:\n" + "\n".join(lines))
        return batches
