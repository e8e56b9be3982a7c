"""DualUnc with bidirectional copy-paste between the labelled and the pseudo-labelled batch: a departure from the
paper (its Eq. 6 trains on the two batches as they come), hence its own trainers.

Each pseudo-labelled sample of a step is mixed with a labelled sample of the same step: a box of about two thirds
of the patch's side is taken from one and pasted into the other, image and (pseudo-)label alike, alternating the
direction from sample to sample (method/copy_paste.py; after Bai et al., CVPR 2023). Eq. 4 then trains on the
mixed samples; the labelled batch stays clean for the supervised loss. Ranking and pseudo-labelling are unchanged.

Measured after a warm start on ACDC (docs/BENCHMARKS.md section 8, "copy-paste" and "a seventh teacher"): 7 labelled,
six paired runs of teachers 6 and 7, +2.9 Dice points over the labelled-only control, positive in every run and +0.8
above Eq. 6 as written, which met the rule set before teacher 7's runs (eight runs with teacher 8: +2.9, all
positive); 3 labelled, five runs of teachers 4 and 5,
+5.8. Its weakness is far false positives (larger HD95), which nnU-Net's postprocessing removes. Hence the
recommended trainer until 2026-12-05's seventh sitting, and still the demo's, though it departs from the paper; the
recommendation now adds the pseudo-label Dice (dualunc_copy_paste_pseudo_dice.py).
"""
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart


class nnUNetTrainerDualUncCopyPaste(nnUNetTrainerDualUnc):
    copy_paste_fraction = 2 / 3


class nnUNetTrainerDualUncWarmStartCopyPaste(nnUNetTrainerDualUncWarmStart):
    copy_paste_fraction = 2 / 3
