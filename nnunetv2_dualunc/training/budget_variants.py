"""Short-budget variants for CPU runs, named like nnU-Net's nnUNetTrainer_Xepochs (X = total epochs).

All three spend the same number of gradient steps (20 epochs), so they compare like nnUNetTrainer_20epochs.
"""
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining


class nnUNetTrainerSelfTraining_20epochs(nnUNetTrainerSelfTraining):
    pretrain_epochs, stage1_epochs, stage2_epochs = 10, 0, 10


class nnUNetTrainerSelfTrainingSS_20epochs(nnUNetTrainerSelfTrainingSS):
    pretrain_epochs, stage1_epochs, stage2_epochs = 10, 5, 5


class nnUNetTrainerDualUnc_20epochs(nnUNetTrainerDualUnc):
    pretrain_epochs, stage1_epochs, stage2_epochs = 10, 5, 5
