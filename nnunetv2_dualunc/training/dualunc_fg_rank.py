"""DualUnc ranking the unlabelled cases by Eq. 1 per foreground voxel: a departure from the paper, hence its own
trainers.

Eq. 1 averages the snapshots' squared softmax differences over every voxel of a case, so on a cardiac slice, mostly
background that every snapshot agrees on, the score mostly measures how much heart the case shows: small hearts look
certain, whatever their pseudo-label is worth. Dividing by the fraction of voxels the teacher labels foreground
(method/ranking.py, `uncertainty_per_foreground_voxel`) asks how unsure the model is about the structure itself. On
ACDC it ranked the pseudo-labels by their hidden Dice better than the paper's mean; on Hippocampus, where the
patch is mostly foreground, it did not. Trained after a warm start on ACDC it gained over the labelled-only control
with 3 labelled patients and fell below the paper's ranking with 7 (docs/BENCHMARKS.md, sections 3 and 8), so the
recommended trainer keeps Eq. 1 as written.
"""
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart


class nnUNetTrainerDualUncFgRank(nnUNetTrainerDualUnc):
    uncertainty_per_foreground_voxel = True


class nnUNetTrainerDualUncWarmStartFgRank(nnUNetTrainerDualUncWarmStart):
    uncertainty_per_foreground_voxel = True
