#!/usr/bin/env python3
"""Has a supervised run reached its plateau? The learning curve of one nnU-Net fold folder, from its checkpoint.

nnU-Net logs per epoch the pseudo-Dice of its validation patches (per class) and an exponential moving average of
their mean (EMA, the value it picks checkpoint_best by). Pseudo-Dice comes from a few random validation patches per
epoch, and the EMA (0.9 old + 0.1 new) lags about ten epochs behind, so the plateau is read from a trailing
window instead: the first epoch whose --window-epoch mean of the mean pseudo-Dice comes within --tolerance
of the best such mean. That is the plateau the warm-start protocol needs its teacher to reach
(docs/log/2026-12-01_acdc-warm-start-protocol.md).
Prints every --every-th epoch.

    .venv/bin/python benchmarks/learning_curve.py FOLD_FOLDER [--every 5] [--tolerance 0.01] \\
        [--out docs/results/<date>_<experiment>/x]
"""
import argparse
import os
from typing import Dict, List, Optional

import torch

from report_files import print_and_save


def read_curve(fold_folder: str) -> Dict[str, list]:
    """nnU-Net's per-epoch log (checkpoint_final.pth, else checkpoint_latest.pth) of one fold folder."""
    for name in ("checkpoint_final.pth", "checkpoint_latest.pth"):
        path = os.path.join(fold_folder, name)
        if os.path.isfile(path):
            logging = torch.load(path, map_location="cpu", weights_only=False)["logging"]
            epochs = len(logging["ema_fg_dice"])
            return {key: list(values)[:epochs] for key, values in logging.items()}
    raise FileNotFoundError(f"{fold_folder} has no checkpoint_final.pth or checkpoint_latest.pth")


def trailing_means(values: List[float], window: int) -> List[float]:
    """Mean of each value and up to window - 1 values before it."""
    windows = (values[max(0, i - window + 1):i + 1] for i in range(len(values)))
    return [sum(w) / len(w) for w in windows]


def plateau_epoch(smoothed: List[float], tolerance: float) -> int:
    """First epoch (0-based) whose smoothed value is within tolerance of the run's best."""
    best = max(smoothed)
    return next(i for i, value in enumerate(smoothed) if value >= best - tolerance)


def summary(curve: Dict[str, list], iterations_per_epoch: Optional[int], tolerance: float, every: int,
            window: int = 5) -> dict:
    ema = [float(v) for v in curve["ema_fg_dice"]]
    windowed = trailing_means([float(v) for v in curve["mean_fg_dice"]], window)
    plateau = plateau_epoch(windowed, tolerance)
    rows = []
    for epoch in sorted(set(range(every - 1, len(ema), every)) | {0, plateau, len(ema) - 1}):
        rows.append({"epoch": epoch + 1, "lr": float(curve["lrs"][epoch]),
                     "train_loss": float(curve["train_losses"][epoch]), "val_loss": float(curve["val_losses"][epoch]),
                     "pseudo_dice": [round(float(d), 4) for d in curve["dice_per_class_or_region"][epoch]],
                     "window_mean": round(windowed[epoch], 4), "ema": round(ema[epoch], 4)})
    return {"epochs": len(ema), "iterations_per_epoch": iterations_per_epoch, "window": window,
            "best_window_mean": round(max(windowed), 4), "tolerance": tolerance, "plateau_epoch": plateau + 1,
            "rows": rows}


def markdown(result: dict, title: str) -> str:
    steps = result["iterations_per_epoch"]
    lines = [f"# Learning curve: {title}", "",
             f"Mean pseudo-Dice over {result['window']}-epoch windows first within {result['tolerance']} of its best "
             f"({result['best_window_mean']}) after epoch {result['plateau_epoch']} of {result['epochs']}"
             + (f" ({result['plateau_epoch'] * steps} of {result['epochs'] * steps} steps)" if steps else ""), "",
             f"| epoch | learning rate | train loss | val loss | pseudo-Dice per class | {result['window']}-epoch mean | "
             f"EMA (nnU-Net) |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['epoch']} | {r['lr']:.5f} | {r['train_loss']:.4f} | {r['val_loss']:.4f} | "
                     f"{' / '.join(f'{d:.3f}' for d in r['pseudo_dice'])} | {r['window_mean']:.4f} | {r['ema']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fold_folder")
    parser.add_argument("--every", type=int, default=5, help="print every N-th epoch (default 5)")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="plateau: windowed mean within this of its best (default 0.01)")
    parser.add_argument("--window", type=int, default=5, help="epochs per window (default 5)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per epoch, to print steps")
    parser.add_argument("--out", default=None, help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    result = summary(read_curve(args.fold_folder), args.iterations, args.tolerance, args.every, args.window)
    folder = os.path.abspath(args.fold_folder)
    text = markdown(result, f"{os.path.basename(os.path.dirname(folder))}/{os.path.basename(folder)}")
    print_and_save(text, result, args.out)


if __name__ == "__main__":
    main()
