"""The trainers a user chooses from, in one list: what nnUNet_extTrainer exports and `nnunetv2_dualunc trainers`
prints, one line each.

Research variants that were measured and not recommended are not here (benchmarks/ext_trainers/research_trainers.py);
each is a class attribute of these trainers.
"""
from dataclasses import dataclass
from typing import List, Tuple

from nnunetv2_dualunc.training.baselines.bcp import nnUNetTrainerBCP, nnUNetTrainerBCPWarmStart
from nnunetv2_dualunc.training.baselines.dct import (nnUNetTrainerDeepCoTraining,
                                                     nnUNetTrainerDeepCoTrainingWarmStart)
from nnunetv2_dualunc.training.baselines.fixmatch import nnUNetTrainerFixMatch, nnUNetTrainerFixMatchWarmStart
from nnunetv2_dualunc.training.baselines.mean_teacher import (nnUNetTrainerMeanTeacher,
                                                              nnUNetTrainerMeanTeacherWarmStart)
from nnunetv2_dualunc.training.baselines.st_plus_plus import nnUNetTrainerSTPlusPlus, nnUNetTrainerSTPlusPlusWarmStart
from nnunetv2_dualunc.training.baselines.ua_mt import nnUNetTrainerUAMT, nnUNetTrainerUAMTWarmStart
from nnunetv2_dualunc.training.baselines.urpc import nnUNetTrainerURPC, nnUNetTrainerURPCWarmStart
from nnunetv2_dualunc.training.budget_variants import (nnUNetTrainerDualUnc_20epochs,
                                                       nnUNetTrainerSelfTraining_20epochs,
                                                       nnUNetTrainerSelfTrainingSS_20epochs)
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.copy_paste import nnUNetTrainerCopyPaste, nnUNetTrainerCopyPasteWarmStart
from nnunetv2_dualunc.training.demo_trainers import (nnUNetTrainer_demo, nnUNetTrainerContinued_demo,
                                                     nnUNetTrainerCopyPasteWarmStart_demo, nnUNetTrainerDualUnc_demo,
                                                     nnUNetTrainerDualUncPlus_demo,
                                                     nnUNetTrainerDualUncPlusFromCopyPaste_demo,
                                                     nnUNetTrainerDualUncWarmStart_demo)
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_plus import (nnUNetTrainerDualUncCopyPastePseudoDice, nnUNetTrainerDualUncPlus,
                                                    nnUNetTrainerDualUncPlusFromCopyPaste,
                                                    nnUNetTrainerDualUncPlusFromScratch,
                                                    nnUNetTrainerDualUncPlusSecondRound,
                                                    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice)
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart
from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining


@dataclass(frozen=True)
class CatalogueEntry:
    trainer: type
    purpose: str


#: (heading, entries): the order a user reads them in
CATALOGUE: Tuple[Tuple[str, Tuple[CatalogueEntry, ...]], ...] = (
    ("Recommended", (
        CatalogueEntry(nnUNetTrainerDualUncPlus, "you have an nnUNetTrainer model of this fold: continue it with the "
                                                 "unlabelled images (copy-paste + pseudo-label Dice)"),
        CatalogueEntry(nnUNetTrainerDualUncPlusFromCopyPaste, "you have trained the control "
                                                              "nnUNetTrainerCopyPasteWarmStart too: the same recipe "
                                                              "continued from that model (better pseudo-labels)"),
        CatalogueEntry(nnUNetTrainerDualUncPlusSecondRound, "you have trained nnUNetTrainerDualUncPlusFromCopyPaste: "
                                                            "the same recipe once more from its model (few labelled "
                                                            "cases)"),
        CatalogueEntry(nnUNetTrainerDualUncPlusFromScratch, "no model yet: the same recipe after the paper's teacher "
                                                            "pre-training"),
    )),
    ("Controls: the same budget without unlabelled images (measure your own gain against these)", (
        CatalogueEntry(nnUNetTrainerContinued, "your nnUNetTrainer model trained on for the warm start's epochs and "
                                               "learning-rate phases, labelled cases only"),
        CatalogueEntry(nnUNetTrainerCopyPasteWarmStart, "the same with supervised copy-paste between labelled samples: "
                                                        "the strong recipe the recommended trainer must beat"),
        CatalogueEntry(nnUNetTrainerCopyPaste, "supervised copy-paste from scratch (no unlabelled images needed)"),
    )),
    ("The paper (self-training with dual uncertainty) and its ablations", (
        CatalogueEntry(nnUNetTrainerDualUnc, "the full method: teacher, Eq. 1 ranking, dual decoder, Eq. 4, two stages"),
        CatalogueEntry(nnUNetTrainerDualUncWarmStart, "the paper's method continued from your nnUNetTrainer model"),
        CatalogueEntry(nnUNetTrainerSelfTrainingSS, "ablation: self-training + sample sorting, one decoder, plain CE"),
        CatalogueEntry(nnUNetTrainerSelfTraining, "ablation: plain self-training"),
    )),
    ("Other semi-supervised methods, on nnU-Net's planning, network and augmentation (the comparison; not yet "
     "benchmarked here)", (
        CatalogueEntry(nnUNetTrainerMeanTeacher, "Mean Teacher: consistency with an EMA teacher on noisy inputs"),
        CatalogueEntry(nnUNetTrainerUAMT, "UA-MT: Mean Teacher counting only voxels the teacher is certain about"),
        CatalogueEntry(nnUNetTrainerURPC, "URPC: the deep-supervision outputs agree, rectified by their uncertainty"),
        CatalogueEntry(nnUNetTrainerFixMatch, "FixMatch: confident own predictions as targets of a strong view"),
        CatalogueEntry(nnUNetTrainerBCP, "BCP: bidirectional copy-paste with an EMA teacher's pseudo-labels"),
        CatalogueEntry(nnUNetTrainerSTPlusPlus, "ST++: self-training, stable images first, strong augmentation"),
        CatalogueEntry(nnUNetTrainerDeepCoTraining, "deep co-training: two networks agree, adversarial views differ"),
        CatalogueEntry(nnUNetTrainerMeanTeacherWarmStart, "Mean Teacher continuing your nnUNetTrainer model"),
        CatalogueEntry(nnUNetTrainerUAMTWarmStart, "UA-MT continuing your nnUNetTrainer model"),
        CatalogueEntry(nnUNetTrainerURPCWarmStart, "URPC continuing your nnUNetTrainer model"),
        CatalogueEntry(nnUNetTrainerFixMatchWarmStart, "FixMatch continuing your nnUNetTrainer model"),
        CatalogueEntry(nnUNetTrainerBCPWarmStart, "BCP continuing your nnUNetTrainer model"),
        CatalogueEntry(nnUNetTrainerSTPlusPlusWarmStart, "ST++ continuing your nnUNetTrainer model"),
        CatalogueEntry(nnUNetTrainerDeepCoTrainingWarmStart, "deep co-training continuing your nnUNetTrainer model"),
    )),
    ("Short budgets (CPU tries, the demo)", (
        CatalogueEntry(nnUNetTrainerDualUnc_20epochs, "nnUNetTrainerDualUnc in 20 epochs"),
        CatalogueEntry(nnUNetTrainerSelfTrainingSS_20epochs, "nnUNetTrainerSelfTrainingSS in 20 epochs"),
        CatalogueEntry(nnUNetTrainerSelfTraining_20epochs, "nnUNetTrainerSelfTraining in 20 epochs"),
        CatalogueEntry(nnUNetTrainer_demo, "the demo's start model (nnUNetTrainer, 10 epochs of 50 steps)"),
        CatalogueEntry(nnUNetTrainerDualUncPlus_demo, "the demo's recommended trainer"),
        CatalogueEntry(nnUNetTrainerContinued_demo, "the demo's control"),
        CatalogueEntry(nnUNetTrainerCopyPasteWarmStart_demo, "the demo's supervised copy-paste control"),
        CatalogueEntry(nnUNetTrainerDualUncPlusFromCopyPaste_demo, "the demo's recommended recipe continued from that "
                                                                   "control's model"),
        CatalogueEntry(nnUNetTrainerDualUncWarmStart_demo, "the paper's method at the demo's budget (warm start)"),
        CatalogueEntry(nnUNetTrainerDualUnc_demo, "the paper's method at the demo's budget (from scratch)"),
    )),
    ("Earlier names, kept working", (
        CatalogueEntry(nnUNetTrainerDualUncWarmStartCopyPastePseudoDice, "= nnUNetTrainerDualUncPlus"),
        CatalogueEntry(nnUNetTrainerDualUncCopyPastePseudoDice, "= nnUNetTrainerDualUncPlusFromScratch"),
    )),
)


def catalogued_trainers() -> List[type]:
    """Every trainer of the catalogue, in its order."""
    return [entry.trainer for _, entries in CATALOGUE for entry in entries]


def default_budget(trainer: type) -> str:
    """The trainer's epochs as a user would plan them: phases for Algorithm 1 and the warm-start controls."""
    phases = None
    if issubclass(trainer, nnUNetTrainerSelfTraining):
        phases = (trainer.pretrain_epochs, trainer.stage1_epochs, trainer.stage2_epochs)
    elif hasattr(trainer, "lr_phases"):
        phases = tuple(trainer.lr_phases)
    if phases is not None:
        return " + ".join(str(p) for p in phases) + " epochs"
    return f"{trainer.num_epochs} epochs" if hasattr(trainer, "num_epochs") else "nnU-Net's 1000 epochs"


def format_catalogue() -> str:
    """The catalogue as the `trainers` command prints it."""
    width = max(len(t.__name__) for t in catalogued_trainers())
    lines = []
    for heading, entries in CATALOGUE:
        lines += ["", heading]
        for entry in entries:
            lines.append(f"  {entry.trainer.__name__:<{width}}  {entry.purpose} [{default_budget(entry.trainer)}]")
    lines += ["", "Train one with: nnUNetv2_train DATASET CONFIGURATION FOLD -tr NAME "
                  "(after: export nnUNet_extTrainer=$(nnunetv2_dualunc trainer-path))"]
    return "\n".join(lines[1:])
