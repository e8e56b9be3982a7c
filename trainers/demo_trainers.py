from nnunetv2_dualunc.training.demo_trainers import nnUNetTrainer_demo, nnUNetTrainerDualUnc_demo

__all__ = ["nnUNetTrainer_demo", "nnUNetTrainerDualUnc_demo"]
