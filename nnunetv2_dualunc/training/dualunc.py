"""The full method: self-training + sample sorting + the dual-decoder uncertainty rectification (Eq. 2, 4)."""
from typing import Optional

import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn

from nnunetv2_dualunc.method.losses import RectifiedPseudoLabelLoss
from nnunetv2_dualunc.network.dual_decoder import DualDecoderUNet, build_dual_decoder_network
from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS


class nnUNetTrainerDualUnc(nnUNetTrainerSelfTrainingSS):
    """Main decoder (transposed convolutions) + auxiliary decoder (interpolation) on one encoder.

    Choices where the paper is silent:
    - the auxiliary decoder gets the supervised loss on labelled cases too, in every phase: an untrained
      auxiliary decoder would make KL(main || aux) large everywhere and exp(-KL) would switch the pseudo-label
      loss off;
    - the rectified loss (Eq. 4) is applied at every deep-supervision scale with nnU-Net's scale weights;
    - inference and the predictor use the main decoder only;
    - the auxiliary decoder mirrors the main one (conv counts, widths); aux_convs_per_stage / aux_width make it
      lighter (nnUNetTrainerDualUncLightAux).
    """

    #: convolutions per auxiliary decoder stage (None: as the main decoder) and its width relative to the main one
    aux_convs_per_stage: Optional[int] = None
    aux_width: float = 1.0
    #: exp(-KL) in Eq. 4 as a fixed weight without gradient (the paper is silent; False keeps the equation as written)
    detach_uncertainty_weight: bool = False
    #: add nnU-Net's soft Dice on the pseudo-labels to Eq. 4, each voxel weighted by exp(-KL) (not the paper's:
    #: nnUNetTrainerDualUncPseudoDice)
    pseudo_label_dice: bool = False

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

    def pseudo_label_loss(self) -> nn.Module:
        dice = None
        if self.pseudo_label_dice:  # the Dice of nnU-Net's labelled loss, same settings
            dice = MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, do_bg=False, smooth=1e-5,
                                               batch_dice=self.configuration_manager.batch_dice, ddp=self.is_ddp)
        return RectifiedPseudoLabelLoss(detach_weight=self.detach_uncertainty_weight, dice=dice)
