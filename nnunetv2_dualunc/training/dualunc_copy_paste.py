"""DualUnc with bidirectional copy-paste between the labelled and the pseudo-labelled batch: a departure from the
paper (its Eq. 6 trains on the two batches as they come), hence its own trainers.

Each pseudo-labelled sample of a step is mixed with a labelled sample of the same step: a box of about two thirds
of the patch's side is taken from one and pasted into the other, image and (pseudo-)label alike, alternating the
direction from sample to sample (method/copy_paste.py; after Bai et al., CVPR 2023). Eq. 4 then trains on the
mixed samples; the labelled batch stays clean for the supervised loss. Ranking and pseudo-labelling are unchanged.
"""
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart


class nnUNetTrainerDualUncCopyPaste(nnUNetTrainerDualUnc):
    copy_paste_fraction = 2 / 3


class nnUNetTrainerDualUncWarmStartCopyPaste(nnUNetTrainerDualUncWarmStart):
    copy_paste_fraction = 2 / 3
