from nnunetv2_dualunc.training.dualunc_pseudo_dice import (nnUNetTrainerDualUncPseudoDice,  # noqa: F401
                                                           nnUNetTrainerDualUncWarmStartPseudoDice)
