from nnunetv2_dualunc.training.budget_variants import (  # noqa: F401
    nnUNetTrainerDualUnc_20epochs, nnUNetTrainerSelfTraining_20epochs, nnUNetTrainerSelfTrainingSS_20epochs)
