"""Every trainer of the plugin, for nnU-Net's lookup by class name (nnUNet_extTrainer points at this folder).

One module is enough: nnU-Net imports each module of the folder and takes the first that has the requested name.
The classes live in nnunetv2_dualunc.training; this module only re-exports them.
"""
from nnunetv2_dualunc.training.budget_variants import (nnUNetTrainerDualUnc_20epochs,
                                                       nnUNetTrainerSelfTraining_20epochs,
                                                       nnUNetTrainerSelfTrainingSS_20epochs)
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.copy_paste import nnUNetTrainerCopyPaste, nnUNetTrainerCopyPasteWarmStart
from nnunetv2_dualunc.training.demo_trainers import (nnUNetTrainer_demo, nnUNetTrainerContinued_demo,
                                                     nnUNetTrainerCopyPasteWarmStart_demo,
                                                     nnUNetTrainerDualUnc_demo, nnUNetTrainerDualUncWarmStart_demo,
                                                     nnUNetTrainerDualUncWarmStartCopyPaste_demo,
                                                     nnUNetTrainerDualUncWarmStartCopyPastePseudoDice_demo,
                                                     nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented_demo,
                                                     nnUNetTrainerDualUncWarmStartFgRank_demo,
                                                     nnUNetTrainerDualUncWarmStartPseudoDice_demo)
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_copy_paste import (nnUNetTrainerDualUncCopyPaste,
                                                          nnUNetTrainerDualUncWarmStartCopyPaste)
from nnunetv2_dualunc.training.dualunc_copy_paste_pseudo_dice import (
    nnUNetTrainerDualUncCopyPastePseudoDice, nnUNetTrainerDualUncCopyPastePseudoDiceIfUndersegmented,
    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice, nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented)
from nnunetv2_dualunc.training.dualunc_fg_rank import nnUNetTrainerDualUncFgRank, nnUNetTrainerDualUncWarmStartFgRank
from nnunetv2_dualunc.training.dualunc_light_aux import nnUNetTrainerDualUncLightAux
from nnunetv2_dualunc.training.dualunc_pseudo_dice import (nnUNetTrainerDualUncPseudoDice,
                                                           nnUNetTrainerDualUncWarmStartPseudoDice)
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart
from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining

__all__ = ["nnUNetTrainerSelfTraining", "nnUNetTrainerSelfTrainingSS", "nnUNetTrainerDualUnc",
           "nnUNetTrainerDualUncLightAux", "nnUNetTrainerDualUncWarmStart", "nnUNetTrainerContinued",
           "nnUNetTrainerCopyPaste", "nnUNetTrainerCopyPasteWarmStart",
           "nnUNetTrainerDualUncPseudoDice", "nnUNetTrainerDualUncWarmStartPseudoDice", "nnUNetTrainerDualUncFgRank",
           "nnUNetTrainerDualUncWarmStartFgRank", "nnUNetTrainerDualUncCopyPaste",
           "nnUNetTrainerDualUncWarmStartCopyPaste", "nnUNetTrainerDualUncCopyPastePseudoDice",
           "nnUNetTrainerDualUncWarmStartCopyPastePseudoDice", "nnUNetTrainerDualUncCopyPastePseudoDiceIfUndersegmented",
           "nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented", "nnUNetTrainerSelfTraining_20epochs",
           "nnUNetTrainerSelfTrainingSS_20epochs", "nnUNetTrainerDualUnc_20epochs", "nnUNetTrainer_demo",
           "nnUNetTrainerDualUnc_demo", "nnUNetTrainerContinued_demo", "nnUNetTrainerCopyPasteWarmStart_demo", "nnUNetTrainerDualUncWarmStart_demo",
           "nnUNetTrainerDualUncWarmStartPseudoDice_demo", "nnUNetTrainerDualUncWarmStartFgRank_demo",
           "nnUNetTrainerDualUncWarmStartCopyPaste_demo", "nnUNetTrainerDualUncWarmStartCopyPastePseudoDice_demo",
           "nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented_demo"]
