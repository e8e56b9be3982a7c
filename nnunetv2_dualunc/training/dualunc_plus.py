"""The recommended trainer, nnUNetTrainerDualUncPlus: DualUnc continued from your nnU-Net model, with copy-paste and
a Dice term on the pseudo-labels. Two departures from the paper, hence names of their own.

- Warm start (nnUNetTrainerDualUncWarmStart): Algorithm 1 from this fold's existing nnUNetTrainer model instead of a
  teacher pre-trained again.
- Copy-paste (``copy_paste_fraction = 2/3``, method/copy_paste.py): each pseudo-labelled sample of a step is mixed
  with a labelled one, a box of about two thirds of the patch's side pasted from one into the other, image and
  (pseudo-)label alike.
- Dice on the pseudo-labels (``pseudo_label_dice``): nnU-Net's soft Dice of the main decoder against the mixed
  pseudo-label beside Eq. 4, every voxel weighted by exp(-KL); it removes most of copy-paste's far false positives.

nnUNetTrainerDualUncPlusFromCopyPaste runs the same recipe from the supervised copy-paste model of the fold
(nnUNetTrainerCopyPasteWarmStart, the control a user trains anyway) instead of the nnUNetTrainer model;
nnUNetTrainerDualUncPlusSecondRound runs it once more from that model (a second round of self-training).

Why these, with the numbers: docs/METHOD.md. Most of this recipe's gain over nnU-Net continued appears without any
unlabelled image; its exact control is the same trainer with ``second_batch_from_labelled = True`` (docs/RESULTS.md).
"""
from nnunetv2_dualunc.training.copy_paste import nnUNetTrainerCopyPasteWarmStart
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart


class nnUNetTrainerDualUncPlus(nnUNetTrainerDualUncWarmStart):
    """The recommended trainer: DualUnc from this fold's nnUNetTrainer model, with copy-paste and the pseudo-label
    Dice (25 adaptation + 200 + 200 epochs)."""

    copy_paste_fraction = 2 / 3
    pseudo_label_dice = True


class nnUNetTrainerDualUncPlusFromCopyPaste(nnUNetTrainerDualUncPlus):
    """The recommended recipe continued from this fold's nnUNetTrainerCopyPasteWarmStart model instead of the
    nnUNetTrainer model. The start model is the teacher that ranks (Eq. 1) and pseudo-labels the unlabelled images
    in stage 1; the copy-paste model labels them better (ACDC 3 labelled: 0.68 against 0.57 Dice on the reliable
    half), and every later stage inherits that. Chain: nnUNetTrainer -> nnUNetTrainerCopyPasteWarmStart -> this."""

    warm_start_trainer = nnUNetTrainerCopyPasteWarmStart.__name__


class nnUNetTrainerDualUncPlusSecondRound(nnUNetTrainerDualUncPlus):
    """The recommended recipe once more, from this fold's nnUNetTrainerDualUncPlusFromCopyPaste model: its ranking and
    first pseudo-labels come from a model that has already learnt from the unlabelled images, so they are better
    again (docs/RESULTS.md). Chain: nnUNetTrainer -> nnUNetTrainerCopyPasteWarmStart ->
    nnUNetTrainerDualUncPlusFromCopyPaste -> this."""

    warm_start_trainer = nnUNetTrainerDualUncPlusFromCopyPaste.__name__


class nnUNetTrainerDualUncPlusFromScratch(nnUNetTrainerDualUnc):
    """The recommended recipe without an existing model: the paper's teacher pre-training, then copy-paste and the
    pseudo-label Dice in both stages (200 + 200 + 200 epochs)."""

    copy_paste_fraction = 2 / 3
    pseudo_label_dice = True


class nnUNetTrainerDualUncWarmStartCopyPastePseudoDice(nnUNetTrainerDualUncPlus):
    """nnUNetTrainerDualUncPlus under its earlier, descriptive name (kept so that existing model folders and
    commands go on working; the results of 2026-12-05 to 2026-12-07 were measured under it)."""


class nnUNetTrainerDualUncCopyPastePseudoDice(nnUNetTrainerDualUncPlusFromScratch):
    """nnUNetTrainerDualUncPlusFromScratch under its earlier, descriptive name."""
