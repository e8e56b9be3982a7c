"""Self-training + sample sorting (the paper's "ST + SS" ablation): Eq. 1 ranking and two stages, plain CE."""
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining


class nnUNetTrainerSelfTrainingSS(nnUNetTrainerSelfTraining):
    pretrain_epochs = 200
    stage1_epochs = 200  # a non-empty stage 1 switches the ranking on
    stage2_epochs = 200
