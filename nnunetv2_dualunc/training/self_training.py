"""Self-training on nnU-Net: Algorithm 1 of the paper, driven by nnU-Net's own training loop.

The whole algorithm is one epoch schedule (``StageSchedule``) plus one hook, ``_enter_phase``:

    epochs [0, P)          pre-train the teacher on labelled cases; keep K snapshots            (Alg. 1, line 1)
    epoch P                rank unlabelled cases by Eq. 1, label the reliable half with the
                           teacher                                                           (lines 2-4)
    epochs [P, P+S1)       stage 1: labelled + reliable pseudo-labelled cases                   (line 5)
    epoch P+S1             refresh the pseudo-labels of all unlabelled cases with the student   (line 6)
    epochs [P+S1, P+S1+S2) stage 2: labelled + all pseudo-labelled cases                        (line 7)

This class is *plain self-training* (stage 1 empty, no ranking, cross entropy on pseudo-labels); the
sample-sorting and DualUnc trainers only override attributes and the network/loss hooks. The unlabelled data
loader, the mixed train step (Eq. 6) and the start-up checks come from training/semi_supervised.py.

Resume (`nnUNetv2_train ... --c`): everything a phase needs is derived from the epoch counter and files written
atomically (snapshot weights, the ranking table, pseudo-label folders with a manifest). Ranking and
pseudo-labelling always read the saved weights of the epoch they belong to, never the live network, so a run
that is killed and resumed computes exactly what an uninterrupted run computes.
"""
import os
import shutil
from collections import Counter
from typing import List, Optional

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from tqdm import tqdm

from nnunetv2_dualunc.atomic_files import atomic_torch_save
from nnunetv2_dualunc.data.pseudo_labels import (check_manifest, class_presence_report,
                                                 pseudo_label_from_probabilities, reset_folder, write_manifest,
                                                 write_pseudo_labelled_case)
from nnunetv2_dualunc.evaluation.evaluate_folders import labels_from_dataset_json
from nnunetv2_dualunc.inference.predictors import SnapshotPredictor
from nnunetv2_dualunc.method.ranking import (RankedCase, rank_cases, reliable_cases, reusable_ranking,
                                             sample_uncertainty, write_ranking)
from nnunetv2_dualunc.method.schedule import Phase, PhasePolyLRScheduler, ScheduleError, StageSchedule
from nnunetv2_dualunc.plots import plot_ranking_histogram
from nnunetv2_dualunc.run_layout import (pseudo_label_folder, ranking_histogram_path, sample_ranking_path,
                                         self_training_state, snapshot_path)
from nnunetv2_dualunc.training.semi_supervised import nnUNetTrainerSemiSupervised


class nnUNetTrainerSelfTraining(nnUNetTrainerSemiSupervised):
    # --- budget (epochs of nnU-Net's 250 iterations); the paper trains 200 epochs per phase -------------------
    pretrain_epochs: int = 200
    stage1_epochs: int = 0  # > 0 switches on the sample ranking (Eq. 1) and the reliable-first stage
    stage2_epochs: int = 400
    # --- ranking ---------------------------------------------------------------------------------------------
    num_snapshots: int = 5  # K; spread over the second half of pre-training, the last one is the teacher
    explicit_snapshot_epochs: Optional[tuple] = None  # completed-epoch counts of the snapshots; None: even spread
    # the weights before the first epoch as one more, first snapshot of Eq. 1 (not the paper's): after a warm start
    # that is the loaded model, so the ranking sees how far the short first phase moved each case's prediction
    snapshot_initial_weights: bool = False
    reliable_fraction: float = 0.5
    # Eq. 1 per voxel the teacher labels foreground instead of per image voxel (not the paper's; see method/ranking)
    uncertainty_per_foreground_voxel: bool = False
    # what case_uncertainty computes, recorded with the ranking so that a stored one is reused only for the same score
    ranking_score: str = "eq1"
    # --- pseudo-labels -----------------------------------------------------------------------------------------
    # nnU-Net's test-time mirroring when pseudo-labelling (~2^d times slower). The ranking never mirrors: Eq. 1
    # compares snapshots with each other under identical conditions either way
    pseudo_label_mirroring: bool = False
    # --- copy-paste (copy_paste_fraction > 0) ---------------------------------------------------------------------
    # the last share of the final stage trains on unmixed batches (not the paper's; 0: mixing to the end), so that the
    # network ends on images in their whole anatomical context (measured in the benchmarks; not recommended)
    copy_paste_unmixed_finish: float = 0.0
    # --- supervised loss ---------------------------------------------------------------------------------------
    # weight of each of Dice and CE on labelled cases: 0.5 is Eq. 5's (Dice + CE) / 2; nnU-Net sums them (1.0), so
    # at one learning rate Eq. 5 halves the labelled step of each decoder
    labelled_loss_weight: float = 0.5
    # --- learning rate -----------------------------------------------------------------------------------------
    # nnU-Net's poly decay restarted at each phase (the paper trains every phase as a full run); False: one decay
    # over all phases (the teacher and the student then label before the rate has annealed)
    lr_restart_each_phase: bool = True

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if hasattr(type(self), "snapshot_epochs"):  # the attribute's name before 2026-12: it would be ignored
            raise ScheduleError(f"{type(self).__name__} sets snapshot_epochs; the attribute is called "
                                f"explicit_snapshot_epochs now (None: K snapshots spread evenly)")
        self.stage_schedule = StageSchedule(
            self.pretrain_epochs, self.stage1_epochs, self.stage2_epochs, self.num_snapshots,
            explicit_snapshot_epochs=self.explicit_snapshot_epochs,
            include_initial_snapshot=self.snapshot_initial_weights)
        self.num_epochs = self.stage_schedule.total_epochs
        if not 0.0 < self.reliable_fraction <= 1.0:  # else rank_cases would refuse it only after pre-training
            raise ScheduleError(f"{self.__class__.__name__}.reliable_fraction = {self.reliable_fraction}: it must be "
                                f"in (0, 1] (the paper's 0.5 = the more certain half is reliable).")
        if not 0.0 <= self.copy_paste_unmixed_finish <= 1.0:
            raise ScheduleError(f"{self.__class__.__name__}.copy_paste_unmixed_finish = "
                                f"{self.copy_paste_unmixed_finish}: it must be in [0, 1] (the share of the final stage "
                                f"trained without copy-paste; 0: mixing to the end).")
        # an epoch is the most an interruption may cost; phase boundaries are always on disk
        self.save_every = 1
        self.active_phase: Optional[Phase] = None

    # ------------------------------------------------------------------------------------------ nnU-Net hooks
    def configure_optimizers(self):
        optimizer, _ = super().configure_optimizers()
        return optimizer, PhasePolyLRScheduler(optimizer, self.initial_lr, self.stage_schedule,
                                               restart_each_phase=self.lr_restart_each_phase)

    def _build_loss(self):
        """Eq. 5: (Dice + CE) / 2 on labelled cases (nnU-Net's default sums them; labelled_loss_weight)."""
        loss = super()._build_loss()
        compound = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
        compound.weight_ce = compound.weight_dice = self.labelled_loss_weight
        return loss

    def prepare_training_data(self) -> None:
        super().prepare_training_data()
        if self.current_epoch == 0:
            self._forget_previous_run()

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(
            f"Self-training schedule: pre-train {self.stage_schedule.pretrain_epochs}, stage 1 "
            f"{self.stage_schedule.stage1_epochs}, stage 2 {self.stage_schedule.stage2_epochs} epochs; "
            f"snapshots after epochs {self.stage_schedule.snapshot_epochs if self.stage_schedule.uses_ranking else '-'};"
            f" {len(self.unlabelled_cases)} unlabelled cases")
        if self.copy_paste_fraction:
            unmixed = self.stage_schedule.final_share_start(self.copy_paste_unmixed_finish)
            until = f"; unmixed from epoch {unmixed}" if unmixed < self.num_epochs else " to the end"
            self.print_to_log_file(f"copy-paste mixing with a box of {self.copy_paste_fraction:.2f} of the patch "
                                   f"side{until}")

    def on_epoch_start(self):
        super().on_epoch_start()
        if self.current_epoch == 0 and 0 in self.stage_schedule.saved_weight_epochs:
            self._save_weights(0)  # after on_train_start, so a warm start's loaded weights
        phase = self.stage_schedule.phase_at(self.current_epoch)
        if phase is not self.active_phase:
            self._enter_phase(phase)

    def on_epoch_end(self):
        # Weights for ranking/pseudo-labelling are written before nnU-Net's checkpoint of the same epoch, so a
        # checkpoint on disk always implies the snapshots up to its epoch exist.
        completed = self.current_epoch + 1
        if completed in self.stage_schedule.saved_weight_epochs:
            self._save_weights(completed)
        super().on_epoch_end()

    def phase_starts(self) -> List[tuple]:
        schedule = self.stage_schedule
        return [(schedule.phase_start(p), p.value) for p in Phase if schedule.phase_length(p) > 0]

    def mixes_copy_paste(self) -> bool:
        return super().mixes_copy_paste() and not self.stage_schedule.in_final_share(self.current_epoch,
                                                                                     self.copy_paste_unmixed_finish)

    # -------------------------------------------------------------------------------- overridable method hooks
    def pseudo_label(self, case: str, data: np.ndarray, nonzero_seg: np.ndarray, predictor: SnapshotPredictor,
                     weights: dict) -> np.ndarray:
        """The label one unlabelled case trains with, in its preprocessed geometry, shaped (1, *spatial): the
        argmax of the given weights' prediction. Benchmarks override it (an oracle with the hidden labels)."""
        probabilities = predictor.probabilities(data, weights)
        return pseudo_label_from_probabilities(probabilities.cpu().numpy(), nonzero_seg)

    def case_uncertainty(self, teacher_probabilities: torch.Tensor, earlier_probabilities) -> float:
        """The score an unlabelled case is ranked by (lower: more reliable) from the teacher's probabilities and
        the earlier snapshots' (a lazy iterable). Default: Eq. 1."""
        return sample_uncertainty(teacher_probabilities, earlier_probabilities, self.uncertainty_per_foreground_voxel)

    # Progress hooks inside Algorithm 1's long steps. They do nothing here; a subclass may report progress (the
    # resume tests kill training at them). Each runs before the step's result is on disk under its final name.

    def on_snapshot_written(self, temporary_file: str) -> None:
        """The weights after epoch current_epoch + 1 are completely written to temporary_file, which is renamed
        to its final name in the snapshot folder right after this returns."""

    def on_case_scored(self, case: str, score: float) -> None:
        """One unlabelled case's uncertainty (Eq. 1) is computed; the ranking file is written after the last."""

    def on_case_pseudo_labelled(self, phase: Phase, case: str) -> None:
        """One case's pseudo-label for phase is stored; the folder's manifest is written after the last."""

    # --------------------------------------------------------------------------------------- Algorithm 1
    def _enter_phase(self, phase: Phase) -> None:
        self.print_to_log_file(f"=== Algorithm 1: entering phase '{phase.value}' at epoch {self.current_epoch} ===")
        if phase.uses_unlabelled and self.second_batch_from_labelled:  # the recipe's control: no unlabelled image
            self.use_labelled_second_batch()
            self.active_phase = phase
            self.print_to_log_file(f"phase '{phase.value}': second batch from the labelled training cases")
            return
        if phase is Phase.PRETRAIN:
            cases = []
        elif phase is Phase.STAGE1:
            ranking = self._ensure_ranking()  # lines 2-3: Eq. 1, split into D_u1 / D_u2
            cases = reliable_cases(ranking)
            self._ensure_pseudo_labels(phase, cases, self.stage_schedule.teacher_epoch)  # line 4
        else:
            cases = self.unlabelled_cases  # line 6: refresh with the student (the teacher without stage 1)
            self._ensure_pseudo_labels(phase, cases, self.stage_schedule.student_epoch)
        self.use_unlabelled_cases(pseudo_label_folder(self.output_folder, phase.value), cases)
        self.active_phase = phase
        self.print_to_log_file(f"phase '{phase.value}': {len(cases)} pseudo-labelled cases in use")

    def _ensure_ranking(self) -> List[RankedCase]:
        """Eq. 1 scores of the unlabelled cases, split by reliable_fraction. Scores on disk are reused only when
        they were computed with the same snapshots and normalisation; the split always uses the current fraction."""
        path = sample_ranking_path(self.output_folder)
        snapshots = self.stage_schedule.snapshot_epochs
        score_settings = {"snapshot_epochs": list(snapshots),
                          "uncertainty_per_foreground_voxel": bool(self.uncertainty_per_foreground_voxel)}
        if self.ranking_score != "eq1":  # older rankings have no such key: they are Eq. 1's
            score_settings["ranking_score"] = self.ranking_score
        settings = dict(score_settings, reliable_fraction=self.reliable_fraction)
        stored = reusable_ranking(path, score_settings, self.unlabelled_cases)
        if stored is not None:
            stored_ranking, recorded = stored
            ranking = rank_cases({r.case: r.score for r in stored_ranking}, self.reliable_fraction)
            if ranking != stored_ranking or recorded != settings:
                write_ranking(path, ranking, settings)
                self.print_to_log_file(f"ranking in {path} re-split with reliable_fraction {self.reliable_fraction}")
            self.print_to_log_file(f"using the ranking in {path}")
            return ranking
        self.print_to_log_file(f"ranking {len(self.unlabelled_cases)} unlabelled cases with snapshots {snapshots}")
        predictor = self._snapshot_predictor(use_mirroring=False)
        weights = {e: self._load_weights(e) for e in snapshots}
        scores = {}
        for case in tqdm(self.unlabelled_cases, desc="Ranking unlabelled cases", disable=self.local_rank != 0):
            data = self._load_unlabelled_image(case)
            teacher = predictor.probabilities(data, weights[snapshots[-1]])
            earlier = (predictor.probabilities(data, weights[e]) for e in snapshots[:-1])
            scores[case] = self.case_uncertainty(teacher, earlier)
            self.on_case_scored(case, scores[case])
        ranking = rank_cases(scores, self.reliable_fraction)
        write_ranking(path, ranking, settings)
        plot_ranking_histogram([r.score for r in ranking], len(reliable_cases(ranking)), ranking_histogram_path(path))
        self.print_to_log_file(f"ranking written to {path} (histogram: {ranking_histogram_path(path)})")
        return ranking

    def _ensure_pseudo_labels(self, phase: Phase, cases: List[str], weights_epoch: int) -> None:
        folder = pseudo_label_folder(self.output_folder, phase.value)
        provenance = {"dataset": self.plans_manager.dataset_name, "configuration": self.configuration_name,
                      "plans": self.plans_manager.plans_name, "fold": str(self.fold),
                      "trainer": self.__class__.__name__, "stage": phase.value, "weights_epoch": weights_epoch}
        if check_manifest(folder, provenance, cases):
            self.print_to_log_file(f"using the pseudo-labels in {folder}")
            return
        self.print_to_log_file(f"pseudo-labelling {len(cases)} cases with the weights after epoch {weights_epoch}")
        reset_folder(folder)
        predictor = self._snapshot_predictor(use_mirroring=self.pseudo_label_mirroring)
        weights = self._load_weights(weights_epoch)
        dataset = nnUNetDatasetBlosc2(self.unlabelled_preprocessed_folder, list(cases))
        cases_with_class = Counter()
        for case in tqdm(cases, desc=f"Pseudo-labelling ({phase.value})", disable=self.local_rank != 0):
            data, nonzero_seg, _, properties = dataset.load_case(case)
            data = np.asarray(data[:])
            label = self.pseudo_label(case, data, np.asarray(nonzero_seg[:]), predictor, weights)
            cases_with_class.update(np.unique(label).tolist())
            # with an ignore label nnU-Net's loader samples patches around annotated voxels: every pseudo-label is one
            annotated = self.label_manager.all_labels if self.label_manager.has_ignore_label else None
            write_pseudo_labelled_case(folder, case, data, label, properties, self.configuration_manager.patch_size,
                                       self.label_manager.foreground_labels, annotated)
            self.on_case_pseudo_labelled(phase, case)
        write_manifest(folder, provenance, cases)
        summary, warnings_ = class_presence_report(cases_with_class, len(cases),
                                                   labels_from_dataset_json(self.dataset_json)[1])
        for line in [f"pseudo-labels ({phase.value}): {summary}"] + warnings_:
            self.print_to_log_file(line)

    # ----------------------------------------------------------------------------------------- plumbing
    def _forget_previous_run(self) -> None:
        """A run that starts from epoch 0 (no --c, or nothing to resume) must not reuse the snapshots, ranking or
        pseudo-labels that an earlier run left in the same fold folder: they came from other weights."""
        leftovers = [path for path in self_training_state(self.output_folder) if os.path.exists(path)]
        if leftovers and self.local_rank == 0:
            self.print_to_log_file(f"fresh run: removing the previous run's {', '.join(leftovers)}")
            for path in leftovers:
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

    def _weights_path(self, completed_epochs: int) -> str:
        return snapshot_path(self.output_folder, completed_epochs)

    def _save_weights(self, completed_epochs: int) -> None:
        if self.local_rank != 0:
            return
        os.makedirs(os.path.dirname(self._weights_path(completed_epochs)), exist_ok=True)
        atomic_torch_save({"network_weights": self._network_module().state_dict(), "epoch": completed_epochs},
                          self._weights_path(completed_epochs), before_replace=self.on_snapshot_written)

    def _load_weights(self, completed_epochs: int) -> dict:
        path = self._weights_path(completed_epochs)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: the weights after epoch {completed_epochs} are needed for ranking or "
                f"pseudo-labelling. They are written during training; restart this fold without --c.")
        return torch.load(path, map_location="cpu", weights_only=True)["network_weights"]

    def _snapshot_predictor(self, use_mirroring: bool) -> SnapshotPredictor:
        network = self.build_network_architecture(
            self.plans_manager, self.configuration_manager, self.num_input_channels,
            self.label_manager.num_segmentation_heads, enable_deep_supervision=False).to(self.device)
        return SnapshotPredictor(network, self.plans_manager, self.configuration_manager, self.dataset_json,
                                 self.device, use_mirroring, self.__class__.__name__,
                                 self.inference_allowed_mirroring_axes)
