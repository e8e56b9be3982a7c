from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining  # noqa: F401
