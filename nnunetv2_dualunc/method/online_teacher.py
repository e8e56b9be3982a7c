"""An online teacher: an exponential moving average (EMA) of the network whose predictions are the pseudo-labels of
each step's unlabelled batch (after Tarvainen & Valpola 2017, "Mean Teacher"; BCP, Bai et al. 2023, labels its mixed
images the same way). Not the paper's: in Algorithm 1 the pseudo-labels are fixed for a whole stage.

Why: the stored pseudo-labels come from the teacher before stage 1 and the student before stage 2; during a stage the
network gets better than the model that labelled its targets (ACDC: the stage-1 pseudo-labels score below what the
supervised control's final model would label,
docs/log/2026-12-02_pseudo-label-quality-and-recipe-without-unlabelled.md). An EMA of the network labels with weights
at most a few hundred steps old, on the very augmented patch the student sees.

Pure tensor functions: no trainer, no files.
"""
from typing import List, Sequence

import torch
from torch import Tensor, nn


def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, for every parameter and floating-point buffer
    (other buffers are copied). Parameters shared between submodules (nnU-Net's decoder holds the encoder) are
    visited once, so each is averaged once."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum {momentum} is outside [0, 1]")
    with torch.no_grad():
        pairs = list(zip(teacher.parameters(), student.parameters())) + list(zip(teacher.buffers(),
                                                                                 student.buffers()))
        for mine, theirs in pairs:
            if mine.shape != theirs.shape:
                raise ValueError(f"teacher and student differ: a tensor of {tuple(mine.shape)} against "
                                 f"{tuple(theirs.shape)}")
            if mine.dtype.is_floating_point:
                mine.mul_(momentum).add_(theirs.detach().to(mine.dtype), alpha=1.0 - momentum)
            else:
                mine.copy_(theirs)


def hard_targets(logits_per_scale: Sequence[Tensor]) -> List[Tensor]:
    """The argmax class of each scale's logits (B, C, *spatial), shaped like nnU-Net's deep-supervision targets:
    (B, 1, *spatial), float."""
    return [logits.argmax(dim=1, keepdim=True).float() for logits in logits_per_scale]
