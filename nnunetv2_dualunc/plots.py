"""Pictures of a semi-supervised run, beside nnU-Net's own progress.png: what a person would rather look at than read.

- ``plot_semi_supervised_progress``: supervised and unsupervised loss, the mean KL between the two decoders on the
  unlabelled batch (Eq. 2), nnU-Net's validation pseudo-Dice, with the phases of Algorithm 1 marked;
- ``plot_ranking_histogram``: the Eq. 1 scores of the unlabelled cases, with the reliable / unreliable cut;
- ``plot_uncertainty_overview``: a few predicted cases, one row each: image, segmentation, uncertainty map (Eq. 2) and
  the reference where there is one;
- ``plot_uncertainty_vs_dice``: each case's uncertainty against its Dice (does the ranking find the bad cases?).

matplotlib (a dependency of nnU-Net) with the file-only backend; data in, PNG out, nothing of the package imported.
"""
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402


def _default_style(plot):
    """matplotlib's default look for plot, whatever nnU-Net's progress.png (seaborn, font scale 2.5) set before."""
    def styled(*args, **kwargs):
        with plt.style.context("default"):
            return plot(*args, **kwargs)
    styled.__doc__, styled.__name__ = plot.__doc__, plot.__name__
    return styled


def _finite(values: Sequence[Optional[float]]) -> List[float]:
    return [math.nan if v is None else float(v) for v in values]


@_default_style
def plot_semi_supervised_progress(values: Dict[str, Sequence[Optional[float]]],
                                  phase_starts: Sequence[Tuple[int, str]], path: str) -> None:
    """values: per-epoch lists ('train_losses', 'unsupervised_losses', 'mean_kl', 'mean_fg_dice', 'ema_fg_dice'; any
    may be missing or shorter, NaN where an epoch has none). phase_starts: (first epoch, name) of each phase."""
    epochs = max((len(v) for v in values.values()), default=0)
    x = list(range(epochs))

    def curve(ax, key: str, **style) -> None:
        series = _finite(values.get(key, []))
        if series:
            ax.plot(x[:len(series)], series, **style)

    total, unsupervised = _finite(values.get("train_losses", [])), _finite(values.get("unsupervised_losses", []))
    supervised = [t - (0.0 if math.isnan(u) else u) for t, u in zip(total, unsupervised + [math.nan] * len(total))]
    fig, (loss_ax, kl_ax, dice_ax) = plt.subplots(3, 1, figsize=(10, 11), sharex=True)
    loss_ax.plot(x[:len(supervised)], supervised, color="tab:blue", label="supervised loss")
    curve(loss_ax, "unsupervised_losses", color="tab:orange", label="unsupervised loss (second batch)")
    loss_ax.set_ylabel("training loss")
    curve(kl_ax, "mean_kl", color="tab:purple", label="mean KL(main || aux) on the second batch (Eq. 2)")
    kl_ax.set_ylabel("mean KL")
    curve(dice_ax, "mean_fg_dice", color="tab:green", ls=":", label="validation pseudo-Dice")
    curve(dice_ax, "ema_fg_dice", color="tab:green", label="validation pseudo-Dice (moving average)")
    dice_ax.set_ylabel("pseudo-Dice")
    dice_ax.set_xlabel("epoch")
    for ax in (loss_ax, kl_ax, dice_ax):
        for start, name in phase_starts:
            ax.axvline(start - 0.5, color="grey", ls="--", lw=1)
            ax.text(start - 0.4, 1.0, name, transform=ax.get_xaxis_transform(), va="top", fontsize=9, color="grey")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=9)
    fig.suptitle("Semi-supervised training; dashed lines: the phases of Algorithm 1")
    fig.tight_layout()
    _save(fig, path)


@_default_style
def plot_ranking_histogram(scores: Sequence[float], n_reliable: int, path: str) -> None:
    """The Eq. 1 score of every unlabelled case; the n_reliable lowest are the reliable subset (stage 1)."""
    ordered = sorted(scores)
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.hist(ordered, bins=max(5, min(40, len(ordered) // 2)), color="tab:blue", alpha=0.8)
    if 0 < n_reliable < len(ordered):
        cut = (ordered[n_reliable - 1] + ordered[n_reliable]) / 2
        ax.axvline(cut, color="tab:red", ls="--", label=f"cut: {n_reliable} reliable | "
                                                          f"{len(ordered) - n_reliable} unreliable")
        ax.legend()
    ax.set_xlabel("Eq. 1: mean squared difference of the snapshots' predictions to the teacher's")
    ax.set_ylabel("unlabelled cases")
    ax.set_title(f"Ranking of {len(ordered)} unlabelled cases")
    fig.tight_layout()
    _save(fig, path)


@dataclass(frozen=True)
class CaseSection:
    """One 2D section of a predicted case, every array of the same shape (the reference None where there is none)."""
    title: str
    image: np.ndarray
    segmentation: np.ndarray
    uncertainty: np.ndarray
    reference: Optional[np.ndarray] = None


@_default_style
def plot_uncertainty_overview(sections: Sequence[CaseSection], path: str) -> None:
    """One row per case: the image, the segmentation over it, the uncertainty map, and the reference over it if any
    section has one. Labels are drawn with one fixed colour per label value, so rows compare."""
    with_reference = any(s.reference is not None for s in sections)
    columns = ["image", "segmentation", "uncertainty: KL(main || aux)"] + (["reference"] if with_reference else [])
    fig, axes = plt.subplots(len(sections), len(columns), figsize=(3.2 * len(columns), 3.2 * len(sections)),
                             squeeze=False)
    max_label = max(int(max(s.segmentation.max(), 0 if s.reference is None else s.reference.max())) for s in sections)
    for row, section in zip(axes, sections):
        labels = [section.segmentation] + ([section.reference] if with_reference else [])
        row[0].imshow(section.image, cmap="gray")
        row[0].set_ylabel(section.title, fontsize=9)
        shown = row[2].imshow(section.uncertainty, cmap="magma")
        fig.colorbar(shown, ax=row[2], fraction=0.046, pad=0.02)
        for ax, label in zip([row[1]] + ([row[3]] if with_reference else []), labels):
            ax.imshow(section.image, cmap="gray")
            if label is not None:
                ax.imshow(np.ma.masked_less_equal(label, 0), cmap="tab10", vmin=1, vmax=max(10, max_label),
                          alpha=0.5, interpolation="nearest")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], columns):
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


@_default_style
def plot_uncertainty_vs_dice(uncertainty: Sequence[float], dice: Sequence[float], spearman: float, path: str) -> None:
    """Each case's mean uncertainty over its foreground against its Dice: a falling cloud means the ranking puts the
    worst segmentations first."""
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(uncertainty, dice, s=18, color="tab:blue", alpha=0.8)
    ax.set_xlabel("mean KL(main || aux) over the foreground (uncertainty_ranking.tsv)")
    ax.set_ylabel("Dice against the reference (mean over classes)")
    ax.set_title(f"{len(dice)} cases, Spearman {spearman:+.2f}")
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str) -> None:
    """Written beside its destination first and renamed, like every other file of a run (a reader never sees half)."""
    temporary = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(temporary, dpi=80)
    plt.close(fig)
    os.replace(temporary, path)
