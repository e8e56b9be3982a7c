from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS  # noqa: F401
