"""Tiny-budget trainers for the integration tests (found through nnUNet_extTrainer like the real ones).

nnUNetTrainerDualUnc_kill kills itself at chosen points, for the resume tests.
"""
import os
import signal
from typing import Callable

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.data.pseudo_labels import completed_cases
from nnunetv2_dualunc.run_layout import pseudo_label_folder
from nnunetv2_dualunc.training.budget_variants import budget_variant
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.copy_paste import nnUNetTrainerCopyPaste, nnUNetTrainerCopyPasteWarmStart
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_plus import (nnUNetTrainerDualUncPlus, nnUNetTrainerDualUncPlusFromCopyPaste,
                                                    nnUNetTrainerDualUncPlusSecondRound)
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining


nnUNetTrainerDualUnc_test = budget_variant(nnUNetTrainerDualUnc, "nnUNetTrainerDualUnc_test", (2, 1, 1), 2, 1,
                                           num_snapshots=2)
nnUNetTrainerDualUncMirroredLabels_test = budget_variant(
    nnUNetTrainerDualUnc, "nnUNetTrainerDualUncMirroredLabels_test", (2, 1, 1), 2, 1, num_snapshots=2,
    pseudo_label_mirroring=True)


class nnUNetTrainerDualUncCopyPasteUnmixedFinish_test(
        budget_variant(nnUNetTrainerDualUnc, "_CopyPasteUnmixedFinishBudget", (2, 1, 2), 2, 1,
                       num_snapshots=2, copy_paste_fraction=2 / 3, copy_paste_unmixed_finish=0.5)):
    """Copy-paste whose last stage-2 epoch of two trains unmixed; logs each step's choice for the test to read."""

    def mixes_copy_paste(self) -> bool:
        mixes = super().mixes_copy_paste()
        self.print_to_log_file(f"copy-paste step at epoch {self.current_epoch}: mixes {mixes}")
        return mixes


nnUNetTrainerSelfTraining_test = budget_variant(nnUNetTrainerSelfTraining, "nnUNetTrainerSelfTraining_test",
                                                (1, 0, 1), 2, 1)


class nnUNetTrainerDualUnc_kill(nnUNetTrainerDualUnc_test):
    """SIGKILLs itself at each point of $DUALUNC_TEST_KILL_POINTS (comma-separated), once per point: a marker file
    in $DUALUNC_TEST_KILL_MARKERS remembers the points already used, so the resumed run goes on. Points:

    "E"          at the start of epoch E
    "E+"         after epoch E's phase was entered, i.e. after its ranking / pseudo-labelling
    "saveN"      while saving the weights after N completed epochs: the temporary file is cut to half its size
                 first, which is what a kill inside torch.save leaves behind
    "rankN"      during the ranking, after N unlabelled cases were scored
    "PHASE_labelN"  during pseudo-labelling for PHASE (stage1, stage2), after N cases were written
    """

    def on_epoch_start(self):
        self._maybe_die(str(self.current_epoch))
        super().on_epoch_start()
        self._maybe_die(f"{self.current_epoch}+")

    def on_snapshot_written(self, temporary_file: str) -> None:
        def cut_in_half():
            with open(temporary_file, "r+b") as f:
                f.truncate(os.path.getsize(temporary_file) // 2)
        self._maybe_die(f"save{self.current_epoch + 1}", before_dying=cut_in_half)

    def on_case_scored(self, case: str, score: float) -> None:
        self._cases_scored = getattr(self, "_cases_scored", 0) + 1
        self._maybe_die(f"rank{self._cases_scored}")

    def on_case_pseudo_labelled(self, phase, case: str) -> None:
        written = len(completed_cases(pseudo_label_folder(self.output_folder, phase.value)))
        self._maybe_die(f"{phase.value}_label{written}")

    @staticmethod
    def _maybe_die(point: str, before_dying: Callable[[], None] = lambda: None) -> None:
        points = os.environ.get("DUALUNC_TEST_KILL_POINTS", "").split(",")
        marker = os.path.join(os.environ.get("DUALUNC_TEST_KILL_MARKERS", "."), f"killed_at_{point}")
        if point in points and not os.path.exists(marker):
            open(marker, "w").close()
            before_dying()
            os.kill(os.getpid(), signal.SIGKILL)


#: stock supervised nnU-Net with a tiny budget: the existing model that warm-start tests continue from
nnUNetTrainer_test = budget_variant(nnUNetTrainer, "nnUNetTrainer_test", 2, 2, 1)
nnUNetTrainerDualUncWarmStart_test = budget_variant(nnUNetTrainerDualUncWarmStart, "nnUNetTrainerDualUncWarmStart_test",
                                                    (2, 1, 1), 2, 1, num_snapshots=2,
                                                    warm_start_trainer="nnUNetTrainer_test")
#: the same warm start with the loaded model as the first snapshot of Eq. 1
nnUNetTrainerDualUncWarmStartLoadedSnapshot_test = budget_variant(
    nnUNetTrainerDualUncWarmStart, "nnUNetTrainerDualUncWarmStartLoadedSnapshot_test", (2, 1, 1), 2, 1,
    num_snapshots=2, warm_start_trainer="nnUNetTrainer_test", snapshot_initial_weights=True)
#: the supervised control of that warm start: same model, same phases of the learning rate, labelled cases only
nnUNetTrainerContinued_test = budget_variant(nnUNetTrainerContinued, "nnUNetTrainerContinued_test", 4, 2, 1,
                                             lr_phases=(2, 1, 1), warm_start_trainer="nnUNetTrainer_test")

#: supervised copy-paste from scratch, and continuing nnUNetTrainer_test with the warm start's learning-rate phases
nnUNetTrainerCopyPaste_test = budget_variant(nnUNetTrainerCopyPaste, "nnUNetTrainerCopyPaste_test", 2, 2, 1)
nnUNetTrainerCopyPasteWarmStart_test = budget_variant(nnUNetTrainerCopyPasteWarmStart,
                                                      "nnUNetTrainerCopyPasteWarmStart_test", 4, 2, 1,
                                                      lr_phases=(2, 1, 1), warm_start_trainer="nnUNetTrainer_test")
#: the recommended trainer's recipe without unlabelled images: its second batch from the labelled cases
nnUNetTrainerDualUncPlusRecipeOnly_test = budget_variant(
    nnUNetTrainerDualUncPlus, "nnUNetTrainerDualUncPlusRecipeOnly_test",
    (2, 1, 1), 2, 1, num_snapshots=2, warm_start_trainer="nnUNetTrainer_test", second_batch_from_labelled=True)
#: the recommended trainer itself (copy-paste with pseudo-labelled unlabelled cases) at the tiny budget
nnUNetTrainerDualUncPlus_test = budget_variant(nnUNetTrainerDualUncPlus, "nnUNetTrainerDualUncPlus_test", (2, 1, 1), 2,
                                               1, num_snapshots=2, warm_start_trainer="nnUNetTrainer_test")
#: the same recipe continued from the supervised copy-paste model (nnUNetTrainer_test -> copy-paste -> this)
nnUNetTrainerDualUncPlusFromCopyPaste_test = budget_variant(
    nnUNetTrainerDualUncPlusFromCopyPaste, "nnUNetTrainerDualUncPlusFromCopyPaste_test", (2, 1, 1), 2, 1,
    num_snapshots=2, warm_start_trainer="nnUNetTrainerCopyPasteWarmStart_test")
#: a second round of that recipe from the model above (nnUNetTrainer_test -> copy-paste -> the above -> this)
nnUNetTrainerDualUncPlusSecondRound_test = budget_variant(
    nnUNetTrainerDualUncPlusSecondRound, "nnUNetTrainerDualUncPlusSecondRound_test", (2, 1, 1), 2, 1,
    num_snapshots=2, warm_start_trainer="nnUNetTrainerDualUncPlusFromCopyPaste_test")


def _baseline_variants() -> dict:
    """The comparison's baselines at the tiny budget: from scratch and continuing nnUNetTrainer_test, each also as its
    recipe-only twin. Online ones train 4 epochs of 2 steps (the warm start with the control's learning-rate phases),
    ST++ Algorithm 1's 2 + 1 + 1 epochs with K = 2 snapshots."""
    from nnunetv2_dualunc.training.baselines.catalogue import BASELINES

    variants = {}
    for scratch, warm in BASELINES:
        for base in (scratch, warm):
            if issubclass(base, nnUNetTrainerSelfTraining):
                epochs, settings = (2, 1, 1), {"num_snapshots": 2}
            else:
                epochs, settings = 4, ({"lr_phases": (2, 1, 1)} if base is warm else {})
            if base is warm:
                settings["warm_start_trainer"] = "nnUNetTrainer_test"
            for suffix, twin in (("_test", {}), ("RecipeOnly_test", {"second_batch_from_labelled": True})):
                name = base.__name__ + suffix
                variants[name] = budget_variant(base, name, epochs, 2, 1, module=__name__, **settings, **twin)
    return variants


globals().update(_baseline_variants())


class nnUNetTrainerMeanTeacher_kill(_baseline_variants()["nnUNetTrainerMeanTeacher_test"]):
    """Mean Teacher at the tiny budget, SIGKILLed at the start of the epochs in $DUALUNC_TEST_KILL_POINTS (once each,
    as nnUNetTrainerDualUnc_kill)."""

    def on_epoch_start(self):
        nnUNetTrainerDualUnc_kill._maybe_die(str(self.current_epoch))
        super().on_epoch_start()
