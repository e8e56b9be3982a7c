from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart  # noqa: F401
