"""DualUnc started from an existing nnU-Net model of the same fold (see training/warm_start.py).

Algorithm 1 with the teacher's pre-training replaced by a short first phase from the loaded weights:

    load nnUNetTrainer's checkpoint_final.pth of this fold (main decoder and encoder; the auxiliary decoder's
    stages are copied from the main decoder)
    epochs [0, P)          both decoders supervised on labelled cases: the auxiliary decoder adapts, and the K
                           snapshots of Eq. 1 are taken along the way (the last one is the teacher)
    then                   stage 1 (labelled + reliable half) and stage 2 (labelled + all), as in DualUnc

Why a first phase at all: Eq. 1 needs K snapshots of one training run, and Eq. 2/4 need an auxiliary decoder that
agrees with the main one where the model is right; an nnUNetTrainer checkpoint has neither.
"""
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.warm_start import WarmStartMixin


class nnUNetTrainerDualUncWarmStart(WarmStartMixin, nnUNetTrainerDualUnc):
    # the existing model already took nnU-Net's full schedule: a short adaptation phase, then the paper's stages
    pretrain_epochs = 25
    stage1_epochs = 200
    stage2_epochs = 200
