"""Budget variants of the four compared methods, one set per benchmark profile (found through nnUNet_extTrainer).

Within a profile every method takes the same number of gradient steps: supervised-only trains `total` epochs,
each semi-supervised trainer splits the same total into pre-training + stage 1 + stage 2. A semi-supervised step
processes the labelled batch plus an equally large pseudo-labelled batch, as the method prescribes.

Warm-start profiles (TEACHER_PROFILES) compare methods that all start from one supervised model: the runner trains
that teacher first (the teacher profile's "supervised"), then each method continues from its checkpoint_final.pth for
the profile's steps; "supervised_continued" is the control with the same learning-rate schedule and no unlabelled
data. Diagnosis-only trainers (oracle labels) live here and never in the product.

Every semi-supervised method has a twin, `<method>_recipe_only` (RECIPE_TWINS): the same trainer with its second
batch drawn from the labelled training cases with their true labels (the base's `second_batch_from_labelled`), so the
same network, losses, copy-paste, batch sizes, phases and steps without one unlabelled image. A method's gain over its
twin is what the unlabelled images add; the twin's gain over supervised_continued is the recipe's. An oracle's twin is
the twin of the method whose pseudo-labels it replaces.

Seeds: $DUALUNC_BENCHMARK_SEED (default 0) seeds python, numpy and torch when the trainer is created. nnU-Net's
augmentation workers draw their own randomness, so a CPU run is repeatable only up to that.
"""
import os
import random
import zlib
from typing import Dict, Sequence, Tuple, Type

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.data.pseudo_labels import completed_cases, write_pseudo_labelled_case
from nnunetv2_dualunc.training.baselines.bcp import nnUNetTrainerBCPWarmStart
from nnunetv2_dualunc.training.baselines.catalogue import BASELINE_METHOD_NAMES, BASELINES
from nnunetv2_dualunc.training.baselines.online import nnUNetTrainerOnlineSemiSupervised
from nnunetv2_dualunc.training.budget_variants import budget_variant
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.copy_paste import nnUNetTrainerCopyPaste, nnUNetTrainerCopyPasteWarmStart
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_plus import (nnUNetTrainerDualUncPlusFromCopyPaste,
                                                    nnUNetTrainerDualUncPlusSecondRound,
                                                    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice)
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart
from nnunetv2_dualunc.training.online_teacher import OnlineTeacherMixin
from nnunetv2_dualunc.data.unlabelled_raw import find_unlabelled_cases
from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining
from research_trainers import (nnUNetTrainerDualUncFgRank, nnUNetTrainerDualUncLightAux,
                               nnUNetTrainerDualUncWarmStartCopyPaste,
                               nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented,
                               nnUNetTrainerDualUncWarmStartFgRank, nnUNetTrainerDualUncWarmStartPseudoDice)

SEED_VARIABLE = "DUALUNC_BENCHMARK_SEED"

#: profile -> (epochs: supervised total, (pretrain, stage1, stage2) of the two-stage methods, iterations, val iterations)
PROFILES: Dict[str, Tuple[int, Tuple[int, int, int], int, int]] = {
    # ACDC 2d_cpu (3 mm, 128x128, 16->256, batch 8): 1500 steps; DualUnc ~45 min on 2 cores
    "acdcCPU": (30, (15, 8, 7), 50, 5),
    # ACDC nnU-Net 2d on one H100-class GPU: 8,000 steps; DualUnc ~16 min on an H200 by the step times measured with
    # benchmarks/gpu_calibration.py (docs/log/2026-11-26_gpu-calibration-and-speed.md), ~21 min on an H100 if it
    # scales with bandwidth
    "acdcGPU": (32, (16, 8, 8), 250, 20),
    # ACDC 2d_cpu, supervised only, long enough to reach the validation plateau: the good teacher that the
    # warm-start profile (acdcCPUwarm) continues from; 2500 steps, ~25 min on 2 idle cores
    "acdcCPUteacher": (50, (1, 0, 49), 50, 5),
    # the warm-start protocol: from acdcCPUteacher's checkpoint, 650 more steps for every method (semi-supervised:
    # adaptation phase with K = 3 snapshots, one per epoch, + stage 1 + stage 2); sized so that both methods of one
    # seed take ~45 min on 2 cores (a DualUnc stage step with its pseudo-labelled batch costs ~3 supervised steps)
    "acdcCPUwarm": (13, (3, 5, 5), 50, 5),
    # the same protocol with each stage twice as long (1150 steps): does the gain from the unlabelled data grow with
    # the steps spent on it? (the product trains 25 + 200 + 200 epochs; the oracle gains +7.4 within 650 steps)
    "acdcCPUwarmLong": (23, (3, 10, 10), 50, 5),
    # the paper: 200 epochs per phase
    "paper": (600, (200, 200, 200), 250, 50),
    # Hippocampus 3d_fullres on 2 CPU cores (batch 7, 40x56x40 patch: ~5.4 s per supervised step): 100 steps, sized
    # for DualUnc's <= 30 min (its ranking and pseudo-labelling of 171 cases included)
    "hippoCPU": (10, (6, 2, 2), 10, 2),
    # Hippocampus 3d_fullres at batch 2 (`3d_fullres_bs2`, same network and patch) on 2 CPU cores: measured with
    # benchmarks/speed.py 1.06 s per supervised step, 1.86 / 4.36 s per DualUnc pre-training / stage step: 360 steps,
    # DualUnc ~27 min with ranking and pseudo-labelling (171 cases x 5 snapshots ~4 min)
    "hippoCPUbs2": (36, (18, 9, 9), 10, 2),
    # Hippocampus 3d_fullres_bs2, supervised only, the warm-start teacher (as acdcCPUteacher): 1200 steps, ~23 min
    "hippoCPUteacher": (24, (1, 0, 23), 50, 5),
    # the warm-start protocol on Hippocampus: 260 more steps per method (about a fifth of the teacher's, as on ACDC);
    # DualUnc ~21 min with the ranking of 171 cases x 3 snapshots and two pseudo-labellings
    "hippoCPUwarm": (13, (3, 5, 5), 20, 2),
    # the same with each stage four times as long (860 steps): at 260 steps even the hidden true labels of the 171
    # unlabelled cases gained only +0.3 (oracle), too little room for any method to show a gain
    "hippoCPUwarmLong": (43, (3, 20, 20), 20, 2),
    # benchmarks/gpu_calibration.py: long enough to time each phase (K = 5 snapshots need 5 pre-training epochs)
    "gpuCal": (9, (5, 2, 2), 50, 5),
}


#: warm-start profile -> the profile whose supervised model every method of it starts from
TEACHER_PROFILES: Dict[str, str] = {"acdcCPUwarm": "acdcCPUteacher", "acdcCPUwarmLong": "acdcCPUteacher",
                                    "hippoCPUwarm": "hippoCPUteacher", "hippoCPUwarmLong": "hippoCPUteacher"}


def seed_everything() -> int:
    seed = int(os.environ.get(SEED_VARIABLE, "0"))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


class _Seeded:
    # nnU-Net records its constructor's arguments by name: the signature must be spelled out
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        seed = seed_everything()
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.print_to_log_file(f"benchmark seed {seed} (${SEED_VARIABLE})")


def _seeded(base: Type[nnUNetTrainer]) -> Type[nnUNetTrainer]:
    return type(f"Seeded{base.__name__}", (_Seeded, base), {"__module__": __name__})


def _num_snapshots(base: Type[nnUNetTrainerSelfTraining], pretrain_epochs: int) -> int:
    return min(base.num_snapshots, pretrain_epochs)  # K <= one snapshot per pre-training epoch


def _teacher_trainer(profile: str, method: str) -> str:
    """The trainer whose model a method loads in a warm-start profile: the profile's supervised teacher, or for a
    method of WARM_START_METHODS the named method's model of the same profile; a twin loads the named method's twin
    where it has one, so that no unlabelled image enters anywhere in the twin's chain (unused outside warm-start
    profiles)."""
    if profile not in TEACHER_PROFILES:
        return "nnUNetTrainer"
    source = WARM_START_METHODS.get(TWIN_SOURCES.get(method, method))
    if source and method in TWIN_SOURCES:
        source = RECIPE_TWINS.get(source, source)
    return trainer_name(source, profile) if source else trainer_name("supervised", TEACHER_PROFILES[profile])


def _variant(method: str, profile: str) -> type:
    """The trainer of one method at one profile's budget (benchmark seed first), named trainer_name(...)."""
    epochs, (pretrain, stage1, stage2), iterations, val_iterations = PROFILES[profile]
    name, base = trainer_name(method, profile), METHODS[method]
    if base is None:  # supervised; a checkpoint every epoch, as the plugin's trainers: nnU-Net's 50 is longer than
        # a teacher profile's whole training, so an interrupted teacher resumed from its best epoch, not its last
        return budget_variant(_seeded(nnUNetTrainer), name, epochs, iterations, val_iterations, module=__name__,
                              save_every=1)
    if issubclass(base, nnUNetTrainerContinued):  # the same phases as the semi-supervised methods of the profile
        assert pretrain + stage1 + stage2 == epochs
        return budget_variant(_seeded(base), name, epochs, iterations, val_iterations,
                              module=__name__, lr_phases=(pretrain, stage1, stage2),
                              warm_start_trainer=_teacher_trainer(profile, method))
    if not issubclass(base, nnUNetTrainerSelfTraining):  # supervised copy-paste: nnU-Net's one budget
        return budget_variant(_seeded(base), name, epochs, iterations, val_iterations, module=__name__,
                              save_every=1)
    if METHODS[TWIN_SOURCES.get(method, method)] is nnUNetTrainerSelfTraining:  # no ranking, hence no stage 1
        stage1, stage2 = 0, stage1 + stage2
    num_snapshots = _num_snapshots(base, pretrain)  # a changed split keeps the profile's K
    split_change = SPLIT_CHANGES.get(TWIN_SOURCES.get(method, method))
    if split_change:
        pretrain, stage1, stage2 = split_change(pretrain, stage1, stage2)
    assert pretrain + stage1 + stage2 == epochs
    return budget_variant(_seeded(base), name, (pretrain, stage1, stage2), iterations, val_iterations,
                          module=__name__, num_snapshots=num_snapshots,
                          warm_start_trainer=_teacher_trainer(profile, method))


class nnUNetTrainerDualUncStepMatched(nnUNetTrainerDualUnc):
    """DualUnc at twice nnU-Net's initial learning rate. Eq. 5 halves the supervised loss ((Dice + CE) / 2 where
    nnUNetTrainer sums them), which under SGD halves every step: at short budgets the teacher then learns the
    harder classes late (ACDC CPU: right ventricle and myocardium Dice < 0.2 after 750 steps, where nnUNetTrainer
    is at 0.7). Doubling the rate gives each decoder nnUNetTrainer's step size and keeps the paper's loss."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 2 * self.initial_lr


ORACLE_LABELS_VARIABLE = "DUALUNC_ORACLE_LABELS"


def hidden_label_file(case: str, file_ending: str) -> str:
    """The true label of an "unlabelled" benchmark case, from $DUALUNC_ORACLE_LABELS (the source's labelsTr)."""
    folder = os.environ.get(ORACLE_LABELS_VARIABLE)
    label_file = os.path.join(folder or "", case + file_ending)
    if not folder or not os.path.isfile(label_file):
        raise FileNotFoundError(f"the hidden label {label_file} of {case} is missing: set ${ORACLE_LABELS_VARIABLE} "
                                f"to the source dataset's labelsTr")
    return label_file


def preprocessed_hidden_label(images: Sequence[str], label_file: str, plans_manager, configuration_manager,
                              dataset_json: dict, spatial_shape: Sequence[int]) -> np.ndarray:
    """The hidden label preprocessed with its image exactly as nnU-Net preprocesses a labelled case, shaped
    (1, *spatial_shape) like a stored segmentation (-1 outside the nonzero region where the plans crop to it)."""
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    preprocessed, label, _ = preprocessor.run_case(images, label_file, plans_manager, configuration_manager,
                                                   dataset_json)
    if tuple(preprocessed.shape[1:]) != tuple(spatial_shape):
        raise RuntimeError(f"{label_file}: the label preprocesses to {preprocessed.shape[1:]}, the stored image is "
                           f"{tuple(spatial_shape)}")
    return label.astype(np.int8)


def oracle_subset(cases: Sequence[str], fraction: float) -> frozenset:
    """round(fraction * n) of the cases, the same ones in every run and stage: the first in the order of a checksum
    of their names (neither the ranking nor alphabetical order, which would group patients or reliable cases)."""
    ordered = sorted(cases, key=lambda case: (zlib.crc32(case.encode()), case))
    return frozenset(ordered[:round(fraction * len(ordered))])


class HiddenLabelsMixin:
    """Reads the hidden true label of an "unlabelled" benchmark case, preprocessed like its stored image."""

    def hidden_label(self, case: str, spatial_shape: Sequence[int]) -> np.ndarray:
        label_file = hidden_label_file(case, self.dataset_json["file_ending"])
        if not hasattr(self, "_oracle_images"):  # one scan of imagesUnlabeled, not one per case
            raw = os.path.join(os.environ["nnUNet_raw"], self.plans_manager.dataset_name)
            self._oracle_images = find_unlabelled_cases(raw, self.dataset_json)
        return preprocessed_hidden_label(self._oracle_images[case], label_file, self.plans_manager,
                                         self.configuration_manager, self.dataset_json, spatial_shape)


class OracleLabelsMixin(HiddenLabelsMixin):
    """Benchmark-only diagnosis, never a product trainer: each "unlabelled" case trains with its true label (read
    from $DUALUNC_ORACLE_LABELS, the source dataset's labelsTr, and preprocessed with its image exactly as nnU-Net
    preprocesses a labelled case) instead of a prediction. Everything else (ranking, stages, losses) is unchanged,
    so the run is the ceiling of what the staged training can deliver with perfect pseudo-labels.

    oracle_fraction < 1 gives the true label to that share of the unlabelled cases only (a fixed subset,
    oracle_subset) and the usual pseudo-label to the rest: runs in between DualUnc and the full oracle measure how the
    gain grows with the quality of the labels trained with."""
    oracle_fraction: float = 1.0

    def pseudo_label(self, case, data, nonzero_seg, predictor, weights):
        if self.oracle_fraction < 1 and case not in oracle_subset(self.unlabelled_cases, self.oracle_fraction):
            return super().pseudo_label(case, data, nonzero_seg, predictor, weights)
        return self.hidden_label(case, data.shape[1:])


class nnUNetTrainerDualUncWarmStartOracle(OracleLabelsMixin, nnUNetTrainerDualUncWarmStart):
    """nnUNetTrainerDualUncWarmStart with the hidden true labels in place of pseudo-labels (diagnosis only)."""


class nnUNetTrainerDualUncWarmStartHalfOracle(nnUNetTrainerDualUncWarmStartOracle):
    """Half of the unlabelled cases with their hidden true label, the other half pseudo-labelled (diagnosis only)."""
    oracle_fraction = 0.5


class nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceOracle(OracleLabelsMixin,
                                                             nnUNetTrainerDualUncWarmStartCopyPastePseudoDice):
    """The recommended trainer with the hidden true labels in place of pseudo-labels (diagnosis only): the ceiling of
    what the unlabelled images can add under its recipe (copy-paste, the pseudo-label Dice)."""


class nnUNetTrainerBCPWarmStartOracle(HiddenLabelsMixin, nnUNetTrainerBCPWarmStart):
    """Supervised copy-paste whose second batch (after BCP's labelled share of the epochs: none in the warm start) is
    drawn from the "unlabelled" cases with their hidden true labels (diagnosis only): the ceiling of what the
    unlabelled images can add under the copy-paste recipe, as the recommended trainer's oracle is under its own.
    BCP's EMA teacher is never asked; with labelled second batches throughout it is copy_paste_continued, its twin."""

    def use_unlabelled_images(self) -> None:
        self.use_unlabelled_cases(self._hidden_label_cases(), self.unlabelled_cases)

    def second_batch_targets(self, data: torch.Tensor, targets):
        return targets  # the hidden true labels, as the loader read them

    def _hidden_label_cases(self) -> str:
        """The unlabelled cases' preprocessed images with their hidden labels, stored as training cases in this
        run's folder (once: a resumed run keeps the finished ones)."""
        folder = os.path.join(self.output_folder, "oracle_cases")
        os.makedirs(folder, exist_ok=True)
        finished = set(completed_cases(folder))
        pending = [case for case in self.unlabelled_cases if case not in finished]
        images = nnUNetDatasetBlosc2(self.unlabelled_preprocessed_folder, pending) if pending else None
        for case in pending:
            data, _, _, properties = images.load_case(case)
            data = np.asarray(data[:])
            write_pseudo_labelled_case(folder, case, data, self.hidden_label(case, data.shape[1:]), properties,
                                       self.configuration_manager.patch_size, self.label_manager.foreground_labels)
        return folder


class nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceOnlineTeacher(OnlineTeacherMixin,
                                                                    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice):
    """The recommended trainer with its pseudo-labels refreshed every step by an EMA teacher
    (training/online_teacher.py): a candidate for closing the gap between the recipe without unlabelled images and
    the oracle (docs/log/2026-12-07_recipe-controls.md). Not recommended until measured under a rule."""


class nnUNetTrainerDualUncWarmStartDetached(nnUNetTrainerDualUncWarmStart):
    """Warm-start DualUnc with exp(-KL) of Eq. 4 as a fixed weight (no gradient through it; method/losses.py)."""
    detach_uncertainty_weight = True


class nnUNetTrainerDualUncWarmStartNoUnlabelled(nnUNetTrainerDualUncWarmStart):
    """Ablation (diagnosis only): the warm-start DualUnc recipe with L_unsup = 0. Same network, both decoders on
    the labelled loss of Eq. 5, same phases and learning-rate restarts, but no ranking, no pseudo-labels and no
    unlabelled batch: what the recipe alone does against supervised-continued."""

    def _enter_phase(self, phase) -> None:
        self.use_unlabelled_cases("", [])
        self.active_phase = phase
        self.print_to_log_file(f"phase '{phase.value}' at epoch {self.current_epoch}: no unlabelled cases (ablation)")


class nnUNetTrainerDualUncWarmStartSummedLoss(nnUNetTrainerDualUncWarmStart):
    """Ablation of Eq. 5's scale (issue 11, "loss scale"): Dice + CE summed on labelled cases as nnUNetTrainer and
    the supervised-continued control do, instead of (Dice + CE) / 2; everything else as the warm start."""
    labelled_loss_weight = 1.0


class nnUNetTrainerDualUncWarmStartMirroredLabels(nnUNetTrainerDualUncWarmStart):
    """Warm-start DualUnc whose pseudo-labels are predicted with nnU-Net's test-time mirroring (the product attribute
    pseudo_label_mirroring; Eq. 1's ranking stays unmirrored). Why: on the unlabelled ACDC volumes of the 2026-12-02
    7-labelled teacher (0.744) mirroring raised the pseudo-label Dice of the stage-1 teacher / the student by 1.0 / 1.4
    points (docs/log/2026-12-02_pseudo-label-quality-and-recipe-without-unlabelled.md), for ~4x the labelling time;
    the paper is silent on how pseudo-labels are inferred."""
    pseudo_label_mirroring = True


class nnUNetTrainerDualUncWarmStartLoadedSnapshot(nnUNetTrainerDualUncWarmStart):
    """Warm-start DualUnc whose Eq. 1 ranking has the loaded model as its first snapshot (the product attribute
    snapshot_initial_weights). Why: with K = 3 snapshots one adaptation epoch apart the ranking did not separate good
    from bad pseudo-labels in the losing seeds (Spearman with the labeller's per-volume Dice -0.13); the loaded model
    is the end of the teacher's own 2500-step training, so it adds how far the adaptation moved each case."""
    snapshot_initial_weights = True


class nnUNetTrainerDualUncWarmStartCopyPasteUnmixedFinish(nnUNetTrainerDualUncWarmStartCopyPaste):
    """Copy-paste with the last fifth of stage 2 unmixed (the product attribute copy_paste_unmixed_finish). Why: the
    copy-paste models' far false positives (mean HD95 5.6-10.0 voxels against Eq. 1's 2.8-7.8; nnU-Net's
    largest-component postprocessing adds +1.9 to copy-paste's Dice and +0.7 to the control's) fit a network that
    learnt from out-of-context mixed images; detectors that train on mosaics end on plain images for that reason
    (YOLOX). acdcCPUwarm: stage 2's last epoch of 5, at the bottom of its poly decay; the product: 40 of 200."""
    copy_paste_unmixed_finish = 0.2


class nnUNetTrainerContinuedOneLRDecay(nnUNetTrainerContinued):
    """The control of the schedule ablation: supervised-continued with one poly decay over all its epochs."""
    lr_restart_each_phase = False


class nnUNetTrainerDualUncWarmStartOneLRDecay(nnUNetTrainerDualUncWarmStart):
    """Schedule ablation (issue 11): the warm start with one poly decay over all phases instead of a restart at each
    phase; the restarts shake a student initialised from a good teacher, one decay labels before the rate annealed."""
    lr_restart_each_phase = False


def _longer_adaptation(pretrain: int, stage1: int, stage2: int) -> Tuple[int, int, int]:
    """Half of each stage's epochs moved into the first phase, same total (acdcCPUwarm: 3 + 5 + 5 -> 7 + 3 + 3): the
    teacher trains longer before it labels. Why: its pseudo-labels of the unlabelled cases score below what the
    supervised control's final model would label
    (docs/log/2026-12-02_pseudo-label-quality-and-recipe-without-unlabelled.md)."""
    return pretrain + stage1 // 2 + stage2 // 2, stage1 - stage1 // 2, stage2 - stage2 // 2


#: methods that train their base trainer with another split of the profile's epochs
SPLIT_CHANGES = {"dualunc_warm_long_adaptation": _longer_adaptation}

METHODS = {"supervised": None, "self_training": nnUNetTrainerSelfTraining,
           "sample_sorting": nnUNetTrainerSelfTrainingSS, "dualunc": nnUNetTrainerDualUnc,
           "dualunc_light_aux": nnUNetTrainerDualUncLightAux, "dualunc_fg_rank": nnUNetTrainerDualUncFgRank,
           "dualunc_step_matched": nnUNetTrainerDualUncStepMatched,
           # warm-start profiles only (TEACHER_PROFILES): both start from the profile's supervised teacher
           "supervised_continued": nnUNetTrainerContinued, "dualunc_warm": nnUNetTrainerDualUncWarmStart,
           "dualunc_warm_oracle": nnUNetTrainerDualUncWarmStartOracle,
           "dualunc_warm_half_oracle": nnUNetTrainerDualUncWarmStartHalfOracle,
           "dualunc_warm_detached": nnUNetTrainerDualUncWarmStartDetached,
           "dualunc_warm_pseudo_dice": nnUNetTrainerDualUncWarmStartPseudoDice,
           "dualunc_warm_no_unlabelled": nnUNetTrainerDualUncWarmStartNoUnlabelled,
           "dualunc_warm_long_adaptation": nnUNetTrainerDualUncWarmStart,
           "dualunc_warm_summed_loss": nnUNetTrainerDualUncWarmStartSummedLoss,
           "dualunc_warm_mirrored_labels": nnUNetTrainerDualUncWarmStartMirroredLabels,
           "dualunc_warm_loaded_snapshot": nnUNetTrainerDualUncWarmStartLoadedSnapshot,
           "dualunc_warm_fg_rank": nnUNetTrainerDualUncWarmStartFgRank,
           "dualunc_warm_copy_paste": nnUNetTrainerDualUncWarmStartCopyPaste,
           "dualunc_warm_copy_paste_unmixed_finish": nnUNetTrainerDualUncWarmStartCopyPasteUnmixedFinish,
           "dualunc_warm_copy_paste_pseudo_dice": nnUNetTrainerDualUncWarmStartCopyPastePseudoDice,
           "dualunc_warm_copy_paste_pseudo_dice_oracle": nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceOracle,
           "dualunc_warm_copy_paste_pseudo_dice_online_teacher":
               nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceOnlineTeacher,
           "dualunc_plus_from_copy_paste": nnUNetTrainerDualUncPlusFromCopyPaste,
           "dualunc_plus_second_round": nnUNetTrainerDualUncPlusSecondRound,
           "dualunc_warm_copy_paste_pseudo_dice_if_undersegmented":
               nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented,
           # the schedule ablation: a control and a warm start with one learning-rate decay over all phases
           "supervised_continued_one_lr_decay": nnUNetTrainerContinuedOneLRDecay,
           "dualunc_warm_one_lr_decay": nnUNetTrainerDualUncWarmStartOneLRDecay,
           # supervised copy-paste (the product's nnUNetTrainerCopyPaste): from scratch, and from the teacher
           "copy_paste": nnUNetTrainerCopyPaste, "copy_paste_continued": nnUNetTrainerCopyPasteWarmStart,
           # the ceiling under the copy-paste recipe: BCP with the hidden true labels (diagnosis only)
           "bcp_continued_oracle": nnUNetTrainerBCPWarmStartOracle}
# the comparison's online baselines (training/baselines/): "<name>" from scratch, "<name>_continued" warm-started
for _scratch, _warm in BASELINES:
    _method = BASELINE_METHOD_NAMES[_scratch.__name__]
    METHODS[_method], METHODS[_method + "_continued"] = _scratch, _warm
#: method -> the method of the same profile whose model it starts from instead of the profile's teacher (the runner
#: trains that one first)
WARM_START_METHODS = {"dualunc_plus_from_copy_paste": "copy_paste_continued",
                      "dualunc_plus_second_round": "dualunc_plus_from_copy_paste"}
#: methods whose twin would not be their recipe (the ablation that drops the unlabelled batch has no second batch)
_WITHOUT_TWIN = {"dualunc_warm_no_unlabelled"}
#: mixins that change only the targets of the second batch: with labelled second batches they do nothing
_TARGETS_ONLY = (OracleLabelsMixin, OnlineTeacherMixin)
RECIPE_ONLY_SUFFIX = "_recipe_only"
#: methods whose recipe without unlabelled images is another method exactly: BCP with labelled second batches is
#: supervised copy-paste (the same loader, mixing, loss, phases and steps)
_SHARED_TWINS = {"bcp": "copy_paste", "bcp_continued": "copy_paste_continued",
                 "bcp_continued_oracle": "copy_paste_continued"}


def _recipe_twins() -> Dict[str, str]:
    """method -> its recipe-without-unlabelled twin; the twin of a method that changes only the second batch's
    targets (an oracle, an online teacher) is that of the method whose targets it replaces."""
    method_of_class = {cls: method for method, cls in reversed(list(METHODS.items()))}  # first method per class
    twins = dict(_SHARED_TWINS)
    for method, cls in METHODS.items():
        if method in twins:
            continue
        if cls is not None and issubclass(cls, nnUNetTrainerOnlineSemiSupervised):  # the teacher is the method's
            twins[method] = method + RECIPE_ONLY_SUFFIX
            continue
        if cls is None or not issubclass(cls, nnUNetTrainerSelfTraining) or method in _WITHOUT_TWIN:
            continue
        recipe_method = method
        if issubclass(cls, _TARGETS_ONLY):
            recipe = next(c for c in cls.__mro__ if issubclass(c, nnUNetTrainerSelfTraining)
                          and not issubclass(c, _TARGETS_ONLY))
            recipe_method = method_of_class[recipe]
        twins[method] = recipe_method + RECIPE_ONLY_SUFFIX
    return twins


RECIPE_TWINS = _recipe_twins()
#: twin method -> the method whose recipe it runs
TWIN_SOURCES = {twin: method for method, twin in RECIPE_TWINS.items() if twin == method + RECIPE_ONLY_SUFFIX}
for _twin, _method in TWIN_SOURCES.items():  # one twin class per recipe class (two methods may share a class)
    _name = f"{METHODS[_method].__name__}RecipeOnly"
    if _name not in globals():
        globals()[_name] = type(_name, (METHODS[_method],), {"second_batch_from_labelled": True, "__module__": __name__})
    METHODS[_twin] = globals()[_name]
#: the base name of each method's budget variants: its class's name, or where one class runs two methods, its own
TRAINER_BASE_NAMES = {method: "nnUNetTrainer" if cls is None else cls.__name__ for method, cls in METHODS.items()}
TRAINER_BASE_NAMES["dualunc_warm_long_adaptation"] = "nnUNetTrainerDualUncWarmStartLongAdaptation"
TRAINER_BASE_NAMES["dualunc_warm_long_adaptation" + RECIPE_ONLY_SUFFIX] = \
    "nnUNetTrainerDualUncWarmStartLongAdaptationRecipeOnly"
#: the comparison of the paper's Table 3, run by default; the others on request (--methods)
PAPER_METHODS = ("supervised", "self_training", "sample_sorting", "dualunc")


def trainer_name(method: str, profile: str) -> str:
    return f"{TRAINER_BASE_NAMES[method]}_{profile}"


# nnU-Net looks trainers up by name among this module's attributes
for _profile in PROFILES:
    for _method in METHODS:
        _cls = _variant(_method, _profile)
        globals()[_cls.__name__] = _cls
