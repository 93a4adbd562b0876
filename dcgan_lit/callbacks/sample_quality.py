"""Sample quality during training: `val/fid`, `val/kid`, `val/precision`, `val/recall` every `every_n_epochs` epochs
and after the last one, with a warning when recall drops while precision holds (mode collapse), and, against the
training images, the copy check `val/nn_ratio` with its grid of samples beside their nearest training images."""

import json
import logging
import time
import uuid
from contextlib import closing
from functools import partial
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torchvision.utils import save_image

from dcgan_lit.callbacks.cadence import ends_run
from dcgan_lit.callbacks.ema import sampling_generator
from dcgan_lit.callbacks.from_rank_zero import from_rank_zero
from dcgan_lit.callbacks.preemption import asked_to_stop
from dcgan_lit.console import info, warning
from dcgan_lit.errors import ConfigError
from dcgan_lit.logger_media import log_image
from dcgan_lit.metrics.copy_check import nearest_grid, nearest_real
from dcgan_lit.metrics.features import FIDFeatures, check_precision, check_runtime, load_extractor
from dcgan_lit.metrics.precision_recall import mode_collapse_warning
from dcgan_lit.metrics.quality import (
    Reference,
    ScoreStopped,
    choose_reference,
    extractor_batch_size,
    features,
    fid_kid,
    generated,
    real_split_features,
    sample_batch_size,
)
from dcgan_lit.output_files import skip_on_write_error
from dcgan_lit.precision import emulated_bf16

log = logging.getLogger(__name__)
SCORES = ("fid", "kid", "precision", "recall", "nn_ratio")  # logged as val/<name>, or val/<name>_bf16
BF16 = "_bf16"  # the suffix of scores from a bf16 extractor


class SampleQuality(Callback):
    """Scores G's samples against real images: torchmetrics' FID and KID, torch-fidelity's precision and recall.

    The real images are the data module's held-out split, or its training split when fewer than `min_heldout`
    images are held out (see `choose_reference`); a data set too small for either is refused at start-up.
    Against the training split the protocol is the few-shot papers' (DiffAugment's fid5k-train): `num_fake_train`
    samples, and the copy check (`metrics/copy_check.py`): `val/nn_ratio`, a warning when samples sit too close to
    training images, and `nearest_epoch_XXX.png` in `samples_dir` (also logged as `samples/nearest_real`).
    Their features are cached in `cache_dir` under a key of their content and the extractor's, so later runs
    (and `python -m dcgan_lit.evaluate`) reuse them. Samples come from G in eval mode (BatchNorm running
    statistics), from a fixed z, so epochs compare like with like.

    Under DDP, rank 0 alone samples and scores while the other ranks wait (`from_rank_zero`), and every rank logs
    its result. A score that fails is reported in one line and skipped: the epoch's checkpoints are still written.
    A run told to stop (SIGTERM, Ctrl-C) or to requeue (SLURM's SIGUSR1/2) gives up its score between two Inception
    passes or two batches of samples, so the checkpoint or the requeue comes within seconds rather than after
    minutes of scoring, which a scheduler's SIGKILL would not wait for.

    Args:
        every_n_epochs: how often to score; the last epoch is always scored.
        num_fake: generated images per score against held-out images (10k is the usual FID-10k).
        num_fake_train: generated images per score against the training images (5k: fid5k-train).
        samples_dir: where the copy check's grids go (None: logged only).
        inception_weights: a local TorchScript TF-Inception (see `make fid-weights`), or None for torchmetrics'
            own Inception, which torch-fidelity downloads.
        cache_dir: where real-image features are kept.
        batch_size: images per Inception pass; None: the device's own (10 on a CPU, 50 on a GPU; see
            `extractor_batch_size`).
        min_heldout: the fewest held-out images to score against; below it the training images are used.
        extractor_precision: fp32; bf16 for monitoring only: faster on CPUs with AMX, but its scores differ from
            fp32's, so they are logged as val/fid_bf16, val/kid_bf16, ... and never as val/fid; or auto: bf16 on a
            GPU or an AMX-BF16 CPU, fp32 elsewhere (a CPU without AMX runs the bf16 Inception 7x slower). A
            checkpoint callback that monitors one of these scores follows the name the chosen precision logs.
        cpu_runtime: auto: a TorchScript Inception in fp32 on a CPU runs through ONNX Runtime where it is installed
            and gives the same features (a fid5k-train 1.12x faster on 2 AMD cores); torch: torch's own CPU graph.
        summary_file: every score, its time and the metrics' share of the run's wall time, as JSON in the run folder.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_fake: int = 10_000,
        inception_weights: str | None = None,
        cache_dir: str = "data/cache",
        batch_size: int | None = None,
        min_heldout: int = 1000,
        extractor_precision: str = "fp32",
        num_fake_train: int = 5_000,
        samples_dir: str | None = None,
        summary_file: str = "sample_quality.json",
        cpu_runtime: str = "auto",
    ) -> None:
        self.every_n_epochs, self.num_fake, self.batch_size = every_n_epochs, num_fake, batch_size
        self.num_fake_train, self.summary_file = num_fake_train, summary_file
        self.samples_dir = Path(samples_dir) if samples_dir else None
        check_precision(extractor_precision)  # now: setup() would take a bad value for a failed download
        check_runtime(cpu_runtime)
        self.extractor_precision, self.cpu_runtime = extractor_precision, cpu_runtime
        self.suffix = ""  # "_bf16" once setup() has loaded a bf16 extractor: val/fid_bf16
        self.inception_weights, self.cache_dir, self.min_heldout = inception_weights, Path(cache_dir), min_heldout
        self._extractor: FIDFeatures | None = None
        self.reference: Reference | None = None
        self.last: dict[str, float | int] = {}
        self.scores: list[dict] = []  # every score of this run, with its epoch and seconds
        self.seconds = 0.0  # spent scoring
        self._start = 0.0
        self._fit_id = ""  # rank 0's, on every rank: the scores' keys in `from_rank_zero` are this fit's alone

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # At start-up, not after the first epoch. A file the user named must load; the default download may
        # fail offline, and then the run goes on without scores rather than not at all.
        try:
            self._extractor = load_extractor(
                self.inception_weights, self.extractor_precision, trainer.strategy.root_device, self.cpu_runtime
            )
        except ConfigError as e:
            if self.inception_weights:
                raise
            rank_zero_warn(f"{e} FID/KID are skipped in this run.")
            return
        self.suffix = BF16 if self._extractor.bf16 else ""
        on_cpu = trainer.strategy.root_device.type == "cpu"
        if slow := emulated_bf16("metrics.extractor_precision", self.extractor_precision, on_cpu):
            warning(log, slow)
        extractor = self._extractor
        info(log, f"FID/KID extractor: {extractor.name} ({extractor.chosen_by}; runs in {extractor.runtime})")
        self.point_checkpoints_at_scores(trainer)
        # Lightning has set up the data module by now, so its split sizes are known before any training.
        self.reference = choose_reference(trainer.datamodule, self.min_heldout)
        info(log, f"FID/KID reference: {self.reference.describe()}; protocol {self.protocol}")

    def point_checkpoints_at_scores(self, trainer: Trainer) -> None:
        """A checkpoint callback that monitors one of these scores (best.ckpt: val/fid) follows the name this run
        logs it under: with metrics.extractor_precision=auto, val/fid_bf16 or val/fid depends on the machine, and
        a monitor that never sees its key would keep no best.ckpt, silently (console.py quiets that warning)."""
        for checkpoint in trainer.checkpoint_callbacks:
            monitor = getattr(checkpoint, "monitor", None) or ""
            score = monitor.removesuffix(BF16)
            if score in {f"val/{name}" for name in SCORES} and monitor != score + self.suffix:
                checkpoint.monitor = score + self.suffix
                info(
                    log,
                    f"{type(checkpoint).__name__} monitors {checkpoint.monitor}, the name scored here, not {monitor}",
                )

    @property
    def samples(self) -> int:
        """Generated images per score: fewer against a small training set, as the few-shot papers score."""
        return self.num_fake_train if self.reference.split == "train" else self.num_fake

    @property
    def protocol(self) -> str:
        return self.reference.protocol(self.samples)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = time.perf_counter()
        # A collective here, where every rank is, and none during the scores.
        self._fit_id = trainer.strategy.broadcast(uuid.uuid4().hex, src=0)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._extractor is None:
            return
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs and not ends_run(trainer):
            return
        result: dict | None = None
        started = time.perf_counter()
        if trainer.is_global_zero:
            try:
                result = self.score(trainer, pl_module)
            except ScoreStopped:
                result = {"stopped": "the run was told to stop or to requeue (SIGTERM, Ctrl-C, SIGUSR1/2)"}
            except Exception as e:  # a metric must never cost the run or this epoch's checkpoint
                result = {"error": f"{type(e).__name__}: {e}"}
        result = from_rank_zero(trainer, f"{self._fit_id}/score/epoch{epoch}", result)
        seconds = time.perf_counter() - started
        self.seconds += seconds
        self.scores.append({"epoch": epoch, "seconds": round(seconds, 2), **result})
        if "stopped" in result:
            # Lightning saves the checkpoint right after this hook; a resumed run scores at the next cadence.
            info(log, f"epoch {trainer.current_epoch}: score stopped after {seconds:.0f} s: {result['stopped']}")
            return
        if "error" in result:
            log.error(
                f"epoch {trainer.current_epoch}: FID/KID failed and were skipped ({result['error']}); training "
                "and checkpoints go on."
            )
            return
        previous, self.last = self.last, result
        for name in (name for name in SCORES if name in result):
            # Every rank logs rank 0's value, so monitors such as best.ckpt agree on all ranks. The mean of equal
            # values is that value exactly; sync_dist only answers Lightning's warning for unsynced epoch logs.
            pl_module.log(f"val/{name}{self.suffix}", float(result[name]), on_epoch=True, sync_dist=True)
        copies = f", nn_ratio {result['nn_ratio']:.2f}" if "nn_ratio" in result else ""
        info(
            log,
            f"epoch {trainer.current_epoch}: FID{self.suffix} {result['fid']:.2f}, KID {result['kid']:.4f}, "
            f"precision {result['precision']:.3f}, recall {result['recall']:.3f}{copies} ({self.protocol})",
        )
        warnings = [mode_collapse_warning(previous, result) if previous else None, result.get("copy_warning")]
        for message in filter(None, warnings):
            warning(log, f"epoch {trainer.current_epoch}: {message}")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._extractor is None or not trainer.is_global_zero:
            return
        wall = time.perf_counter() - self._start
        share = self.seconds / wall if wall > 0 else 0.0
        info(
            log,
            f"metrics: {len(self.scores)} scores ({self.protocol}) took {self.seconds:.0f} s, {share:.0%} of the "
            f"{wall:.0f} s from the first batch to the end",
        )
        summary = {
            "protocol": self.protocol,
            "reference": self.reference.as_dict(),
            "extractor": self._extractor.name,
            "extractor_runtime": self._extractor.runtime,
            "metrics_seconds": self.seconds,
            "wall_seconds": wall,
            "metrics_share": share,
            "scores": self.scores,
        }
        path = Path(trainer.default_root_dir) / self.summary_file
        with skip_on_write_error(path):
            path.write_text(json.dumps(summary, indent=2) + "\n")

    @torch.no_grad()
    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float | int]:
        device = pl_module.device
        extractor = self._extractor.to(device)
        dm = trainer.datamodule
        batch_size = extractor_batch_size(self.batch_size, device)
        stop = partial(asked_to_stop, trainer)
        real = real_split_features(extractor, dm, self.reference.split, device, self.cache_dir, batch_size, stop)
        sampler = sampling_generator(trainer, pl_module)
        samples = generated(sampler, self.samples, pl_module.hparams.nz, device, sample_batch_size(device), stop=stop)
        with closing(samples):  # G's mode back, even when the score stops or fails
            if self.reference.split != "train":
                return fid_kid(extractor, real, features(extractor, samples, device, batch_size, stop), device)
            images = torch.cat([batch.cpu() for batch in samples])  # kept for the grid: 5k at 64x64 is 61 MB
        fake = features(extractor, [images], device, batch_size, stop)
        check = nearest_real(real, fake)
        grid = nearest_grid(images, dm.split_dataset("train"), check)
        epoch = trainer.current_epoch + 1
        caption = f"epoch {epoch}: the 16 samples nearest the training set (rows 1, 3) above their nearest images"
        if self.samples_dir is not None:
            with skip_on_write_error(self.samples_dir / f"nearest_epoch_{trainer.current_epoch:03d}.png"):
                self.samples_dir.mkdir(parents=True, exist_ok=True)
                save_image(grid, self.samples_dir / f"nearest_epoch_{trainer.current_epoch:03d}.png")
        log_image(trainer, "samples/nearest_real", grid, step=epoch, caption=caption)
        return {**fid_kid(extractor, real, fake, device), **check.as_dict(), "copy_warning": check.warning()}
