"""The base of the online baselines (Mean Teacher, UA-MT, URPC, FixMatch, BCP, deep co-training): every step adds a batch of
unlabelled image patches whose targets the method computes in the step itself, from a teacher, the network's own
prediction or the network's other outputs. No ranking, no stored pseudo-labels, no stages.

What a method module adds is one or two hooks of the semi-supervised base (training/semi_supervised.py):
``second_batch_targets`` or ``second_batch`` (the targets, maybe another view of the images), ``pseudo_label_loss``
or ``second_batch_loss`` (the loss on them), and its constants. This class adds:
- the second batch: all unlabelled images, patches drawn uniformly (data/unlabelled_batches.py), through nnU-Net's
  augmentation; with ``second_batch_from_labelled`` (the method's recipe without unlabelled images) the labelled
  training cases with their true labels instead, which each method turns into its own kind of target;
- ``labelled_second_batch_share``: a first share of the epochs whose second batch is labelled (BCP's pre-training);
- the unsupervised weight ``unsupervised_loss_weight`` with the sigmoid ramp-up of Mean Teacher, UA-MT and URPC over
  the first ``rampup_share`` of the epochs (per epoch; 0: constant);
- a checkpoint after every epoch (nnU-Net's is every 50th), so that ``--c`` loses at most one epoch.

Warm starts: ``<Method>WarmStart(nnUNetTrainerContinued, <Method>)`` continues an nnUNetTrainer model with the
control's epochs and learning-rate phases (training/continued.py), as nnUNetTrainerCopyPasteWarmStart does.
"""
import torch

from nnunetv2_dualunc.method.consistency import sigmoid_rampup
from nnunetv2_dualunc.training.semi_supervised import nnUNetTrainerSemiSupervised


class nnUNetTrainerOnlineSemiSupervised(nnUNetTrainerSemiSupervised):
    unsupervised_loss_weight: float = 1.0
    rampup_share: float = 0.0
    labelled_second_batch_share: float = 0.0

    # nnU-Net records its constructor's arguments by name: the signature is spelled out
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.save_every = 1  # as every semi-supervised trainer here: a kill costs at most one epoch (and its teacher)

    def on_epoch_start(self):
        super().on_epoch_start()
        self._choose_second_batch()

    def unsupervised_weight(self) -> float:
        if self.rampup_share <= 0:
            return self.unsupervised_loss_weight
        return self.unsupervised_loss_weight * sigmoid_rampup(self.training_progress() / self.rampup_share)

    def training_progress(self) -> float:
        """The share of the epochs done before this one: 0 in the first, (E - 1) / E in the last."""
        return self.current_epoch / max(1, self.num_epochs)

    def second_batch_labelled_now(self) -> bool:
        """Whether this epoch's second batch holds labelled cases with their true labels."""
        return self.second_batch_from_labelled or self.current_epoch < round(self.labelled_second_batch_share *
                                                                             self.num_epochs)

    def _choose_second_batch(self) -> None:
        labelled = self.second_batch_labelled_now()
        if self.dataloader_unlabelled is not None and labelled == self.second_batch_is_labelled:
            return
        if labelled:
            self.use_labelled_second_batch()
        else:
            self.use_unlabelled_images()
        self.print_to_log_file(f"epoch {self.current_epoch}: second batch of "
                               f"{'labelled cases with their labels' if labelled else 'unlabelled images'}")
