"""Supervised copy-paste: nnU-Net's network and loss, with a second batch of labelled samples mixed by copy-paste.

For users without unlabelled images, and the supervised baseline that semi-supervised training has to beat. On ACDC
most of the recommended trainer's gain over nnU-Net continued appeared without any unlabelled image (held-out test
patients, 7 labelled: +7.2 / +7.6 Dice points for its recipe fed only labelled images, +2.6 / +1.8 more with the
unlabelled images); copy-paste mixing of labelled images is a large part of that recipe.

Each step: the plans' labelled batch, clean, and a second labelled batch of the same size (a fresh draw through
nnU-Net's loader and augmentation), each sample of which is mixed with a sample of the first by a pasted box of about
two thirds of the patch's side, image and label alike (method/copy_paste.py). Both batches get nnU-Net's own loss
(Dice + CE, deep supervision, ignore label), so a step sees as many labelled samples as a step of the recommended
semi-supervised trainer sees samples. The second batch is the semi-supervised base's, switched to labelled cases
(``second_batch_from_labelled``): no unlabelled image is read and a dataset needs none.

Choice where the copy-paste papers differ: the mixing runs in every epoch (the recommended trainer mixes only in its
pseudo-label stages; its exact control is its own twin with ``second_batch_from_labelled``, not this trainer).
"""
from torch import nn

from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.semi_supervised import nnUNetTrainerSemiSupervised


class nnUNetTrainerCopyPaste(nnUNetTrainerSemiSupervised):
    """nnUNetTrainer plus a second, copy-paste-mixed batch of labelled samples in every step (nnU-Net's 1000 epochs)."""

    copy_paste_fraction = 2 / 3
    second_batch_from_labelled = True

    def pseudo_label_loss(self) -> nn.Module:
        """nnU-Net's own per-scale loss (Dice + CE with its settings) for the mixed batch: its targets are labels."""
        return self.nnunet_scale_loss()

    def on_train_start(self):
        super().on_train_start()
        self.use_labelled_second_batch()
        self.print_to_log_file(f"copy-paste mixing of a second labelled batch with a box of "
                               f"{self.copy_paste_fraction:.2f} of the patch side, every epoch")


class nnUNetTrainerCopyPasteWarmStart(nnUNetTrainerContinued, nnUNetTrainerCopyPaste):
    """nnUNetTrainerContinued with supervised copy-paste: from this fold's existing nnUNetTrainer model, the same
    epochs and per-phase learning rate as the warm-start semi-supervised trainers, labelled images only."""
