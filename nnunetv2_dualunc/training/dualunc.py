"""The full method: self-training + sample sorting + the dual-decoder uncertainty rectification (Eq. 2, 4)."""
from typing import Iterator, Optional

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn

from nnunetv2_dualunc.method.class_volume import class_shares, share_ratios, undersegmented
from nnunetv2_dualunc.method.losses import RectifiedPseudoLabelLoss, kl_divergence_map
from nnunetv2_dualunc.method.schedule import Phase
from nnunetv2_dualunc.network.dual_decoder import DualDecoderUNet, build_dual_decoder_network
from nnunetv2_dualunc.run_layout import pseudo_label_folder
from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS


def _segmentations(dataset) -> Iterator[np.ndarray]:
    """Each case's segmentation of an nnU-Net dataset, loaded one at a time."""
    return (dataset.load_case(key)[1][:] for key in dataset.identifiers)


class nnUNetTrainerDualUnc(nnUNetTrainerSelfTrainingSS):
    """Main decoder (transposed convolutions) + auxiliary decoder (interpolation) on one encoder.

    Choices where the paper is silent:
    - the auxiliary decoder gets the supervised loss on labelled cases too, in every phase: an untrained
      auxiliary decoder would make KL(main || aux) large everywhere and exp(-KL) would switch the pseudo-label
      loss off;
    - the rectified loss (Eq. 4) is applied at every deep-supervision scale with nnU-Net's scale weights;
    - inference and the predictor use the main decoder only;
    - the auxiliary decoder mirrors the main one (conv counts, widths); aux_convs_per_stage / aux_width make it
      lighter (a research option: benchmarks/ext_trainers/research_trainers.py).
    """

    #: convolutions per auxiliary decoder stage (None: as the main decoder) and its width relative to the main one
    aux_convs_per_stage: Optional[int] = None
    aux_width: float = 1.0
    #: exp(-KL) in Eq. 4 as a fixed weight without gradient (the paper is silent; False keeps the equation as written)
    detach_uncertainty_weight: bool = False
    #: add nnU-Net's soft Dice on the pseudo-labels to Eq. 4, each voxel weighted by exp(-KL) (not the paper's:
    #: on in nnUNetTrainerDualUncPlus, with copy-paste)
    pseudo_label_dice: bool = False
    #: with pseudo_label_dice: keep the Dice term only if the first pseudo-labels under-segment a class, i.e. give it
    #: less than this times its share of the labelled training cases' voxels (method/class_volume.py); None: always
    pseudo_label_dice_if_share_below: Optional[float] = None
    #: that decision, once made (None: not yet)
    _pseudo_label_dice_kept: Optional[bool] = None

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        # a classmethod, so nnU-Net's predictor (which calls it on the class) builds the same auxiliary decoder
        return build_dual_decoder_network(plans_manager, configuration_manager, num_input_channels,
                                          num_output_channels, enable_deep_supervision,
                                          aux_convs_per_stage=cls.aux_convs_per_stage, aux_width=cls.aux_width)

    def set_deep_supervision_enabled(self, enabled: bool):
        module = self._network_module()
        assert isinstance(module, DualDecoderUNet)
        module.deep_supervision = enabled

    def forward_heads(self, data: torch.Tensor) -> list:
        return list(self.network(data, return_auxiliary=True))

    def unlabelled_diagnostics(self, heads: list) -> dict:
        """The mean KL(main || aux) (Eq. 2) on the second batch at full resolution: how much the decoders disagree."""
        return {"mean_kl": kl_divergence_map(heads[0][0], heads[1][0]).mean().detach()}

    def pseudo_label_loss(self) -> nn.Module:
        dice = None
        if self.pseudo_label_dice:  # the Dice of nnU-Net's labelled loss, same settings
            dice = MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, do_bg=False, smooth=1e-5,
                                               batch_dice=self.configuration_manager.batch_dice, ddp=self.is_ddp)
        return RectifiedPseudoLabelLoss(ignore_index=self.label_manager.ignore_label,
                                        detach_weight=self.detach_uncertainty_weight, dice=dice)

    def _enter_phase(self, phase: Phase) -> None:
        super()._enter_phase(phase)
        # the guard reads the first pseudo-labels; a second batch of labelled cases has none and keeps the term
        guarded = (self.pseudo_label_dice and self.pseudo_label_dice_if_share_below is not None
                   and not self.second_batch_from_labelled)
        if phase.uses_unlabelled and guarded and not self._keeps_pseudo_label_dice():
            self.unsupervised_loss.loss.dice = None

    def _keeps_pseudo_label_dice(self) -> bool:
        """Decided once per run from files on disk (the first phase's pseudo-labels, the labelled training cases),
        so that a resumed run decides as the uninterrupted one did."""
        if self._pseudo_label_dice_kept is not None:
            return self._pseudo_label_dice_kept
        first = self.stage_schedule.phase_at(self.stage_schedule.pretrain_epochs)  # the first pseudo-labelled phase
        labels = list(self.label_manager.foreground_labels)
        pseudo = nnUNetDatasetBlosc2(pseudo_label_folder(self.output_folder, first.value))
        labelled_keys, _ = self.do_split()
        labelled = self.dataset_class(self.preprocessed_dataset_folder, labelled_keys)  # set by do_split
        ignore = self.label_manager.ignore_label  # never in a pseudo-label; not annotated in a labelled case
        ratios = share_ratios(class_shares(_segmentations(pseudo), labels),
                              class_shares(_segmentations(labelled), labels, ignore), labels)
        small = undersegmented(ratios, self.pseudo_label_dice_if_share_below)
        self._pseudo_label_dice_kept = bool(small)
        shown = ", ".join(f"{label}: {ratio:.2f}" for label, ratio in ratios.items())
        self.print_to_log_file(
            f"pseudo-label class shares / labelled class shares ({first.value}): {shown}; the Dice term on "
            f"pseudo-labels is {'kept' if small else 'switched off'} (threshold "
            f"{self.pseudo_label_dice_if_share_below}: {'classes ' + str(sorted(small)) if small else 'no class'} "
            f"below it)")
        return self._pseudo_label_dice_kept
