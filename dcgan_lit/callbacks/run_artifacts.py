"""End-of-run figures, as the DCGAN tutorial shows them: loss curves, D scores, the fixed-noise GIF, real vs fake.

Written to `dirpath` by rank 0. Real vs fake, captioned, also goes to every logger that takes pictures as
`samples/real_vs_fake`; the two plots go to W&B and MLflow as `plots/losses` and `plots/scores` (TensorBoard draws
them as interactive charts instead).
"""

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or in CI

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch import Callback, LightningModule, Trainer  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from torchvision.transforms.functional import pil_to_tensor  # noqa: E402

from dcgan_lit.logger_media import log_figure, log_image  # noqa: E402
from dcgan_lit.output_files import skip_on_write_error  # noqa: E402

log = logging.getLogger(__name__)


class RunArtifacts(Callback):
    """losses.png, scores.png, progress.gif (the fixed-noise grids across epochs) and real_vs_fake.png.

    A resumed run's figures cover the whole run: the checkpoint carries the logged stats and the paths of the
    grids drawn so far, which stay in the earlier run's folder.

    Args:
        dirpath: the run folder's artifacts folder.
        samples_dir: where SampleGrid writes real.png and epoch_XXX.png.
        gif_ms: time per GIF frame.
    """

    def __init__(self, dirpath: str, samples_dir: str, gif_ms: int = 400) -> None:
        self.dirpath, self.samples_dir, self.gif_ms = Path(dirpath), Path(samples_dir), gif_ms
        self.history: list[tuple[int, torch.Tensor]] = []  # (batch, the step's stats) at each logged batch
        self.earlier_grids: list[str] = []  # the fixed-noise grids of the runs this one resumed, oldest first

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: dict, batch: object, batch_idx: int
    ) -> None:
        # The batches the logger writes, so the plots show what TensorBoard shows; kept on the device, no sync.
        if outputs["logged"]:
            self.history.append((pl_module.batches_done - 1, outputs["stats"].detach().clone()))

    def stat_history(self) -> torch.Tensor:
        """(N, 6) float64 on the CPU: the batch, then the step's 5 stats (module.STAT_NAMES), per logged batch."""
        if not self.history:
            return torch.zeros(0, 6, dtype=torch.float64)
        steps = torch.tensor([step for step, _ in self.history], dtype=torch.float64)
        return torch.cat([steps[:, None], torch.stack([v.double().cpu() for _, v in self.history])], 1)

    def grids(self) -> list[Path]:
        """Every fixed-noise grid of the run so far, the resumed runs' first, each once."""
        grids = {str(p.resolve()): p for p in [*map(Path, self.earlier_grids), *self.samples_dir.glob("epoch_*.png")]}
        return sorted(grids.values(), key=lambda p: (p.stem, str(p)))  # epoch_XXX.png: in epoch order

    def state_dict(self) -> dict:
        # A resumed run's plots start at batch 0 and its GIF at the first epoch, not at the resume.
        return {"stat_history": self.stat_history(), "grids": [str(p.resolve()) for p in self.grids()]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = [(int(row[0]), row[1:]) for row in state_dict.get("stat_history", [])]
        self.earlier_grids = list(state_dict.get("grids", []))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        history = self.stat_history()
        figures = {}
        if len(history):
            step = history[:, 0].numpy()
            figures["losses"] = self._plot(step, {"G": history[:, 2], "D": history[:, 1]}, "Loss", "G and D loss")
            scores = {"D(x)": history[:, 3], "D(G(z)) before D's step": history[:, 4], "after": history[:, 5]}
            figures["scores"] = self._plot(step, scores, "D's output", "D(x) and D(G(z))")
        with skip_on_write_error(self.dirpath):
            self.dirpath.mkdir(parents=True, exist_ok=True)
        for name, fig in figures.items():
            with skip_on_write_error(self.dirpath / f"{name}.png"):
                fig.savefig(self.dirpath / f"{name}.png", dpi=100)
        grids = [g for g in self.grids() if g.is_file()]
        if len(grids) < len(self.grids()):
            log.warning(
                f"progress.gif: {len(self.grids()) - len(grids)} grids of the run this one resumed are gone "
                f"(e.g. {next(g for g in self.grids() if not g.is_file())}); the GIF leaves them out"
            )
        if grids:
            frames = [Image.open(g).convert("RGB") for g in grids]
            with skip_on_write_error(self.dirpath / "progress.gif"):
                frames[0].save(self.dirpath / "progress.gif", save_all=True, append_images=frames[1:],
                               duration=self.gif_ms, loop=0)  # fmt: skip
        side_by_side = None
        real = self.samples_dir / "real.png"
        if grids and real.is_file():
            epochs = int(grids[-1].stem.removeprefix("epoch_")) + 1  # the last grid: epoch_XXX.png counts from 0
            side_by_side = captioned_pair(
                Image.open(real).convert("RGB"), "real (training set)",
                Image.open(grids[-1]).convert("RGB"), f"generated (epoch {epochs})",
            )  # fmt: skip
            with skip_on_write_error(self.dirpath / "real_vs_fake.png"):
                side_by_side.save(self.dirpath / "real_vs_fake.png")
        if side_by_side is not None:
            log_image(trainer, "samples/real_vs_fake", pil_to_tensor(side_by_side), step=epochs,
                      caption=f"real vs generated, epoch {epochs}")  # fmt: skip
        for name, fig in figures.items():
            log_figure(trainer, f"plots/{name}", fig)
        for fig in figures.values():
            plt.close(fig)

    @staticmethod
    def _plot(step: object, series: dict[str, torch.Tensor], ylabel: str, title: str) -> plt.Figure:
        fig, ax = plt.subplots(figsize=(10, 5))
        for label, values in series.items():
            ax.plot(step, values.numpy(), label=label, linewidth=1)
        ax.set_xlabel("batch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        return fig


def captioned_pair(left: Image.Image, left_caption: str, right: Image.Image, right_caption: str) -> Image.Image:
    """Two images side by side on white, each with its caption above it, in type sized to stay legible when
    TensorBoard shrinks the picture to a card."""
    size = max(12, left.width // 16)
    font = ImageFont.load_default(size=size)  # Pillow's bundled TrueType font: no system fonts needed
    band, gap = int(size * 1.5), 16  # caption band height, space between the two images
    out = Image.new("RGB", (left.width + gap + right.width, band + max(left.height, right.height)), "white")
    draw = ImageDraw.Draw(out)
    for image, caption, x in ((left, left_caption, 0), (right, right_caption, left.width + gap)):
        draw.text((x + 2, size // 4), caption, fill="black", font=font)
        out.paste(image, (x, band))
    return out
