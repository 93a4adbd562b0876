"""hydra/launcher=slurm and trainer=slurm: they compose, and the SLURM job is shaped the way Lightning needs."""

import signal

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment

from dcgan_lit.checkpoint_io import AtomicCheckpointIO
from tests.conftest import CONF_DIR


def test_slurm_launcher_asks_for_one_task_per_gpu_on_every_node() -> None:
    overrides = ["hydra/launcher=slurm", "trainer=slurm", "trainer.devices=4", "trainer.num_nodes=2"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.signal_delay_s == 120 and launcher.max_num_timeout == 0

    assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"
    plugins = instantiate(cfg.trainer.plugins)
    assert isinstance(plugins[0], AtomicCheckpointIO)
    slurm = plugins[1]
    assert isinstance(slurm, SLURMEnvironment)
    assert slurm.auto_requeue and slurm.requeue_signal == signal.SIGUSR2  # what submitit has SLURM send
