from nnunetv2_dualunc.training.dualunc_light_aux import nnUNetTrainerDualUncLightAux  # noqa: F401
