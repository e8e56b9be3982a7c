from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc  # noqa: F401
