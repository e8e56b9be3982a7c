"""Self-training on nnU-Net: Algorithm 1 of the paper, driven by nnU-Net's own training loop.

The whole algorithm is one epoch schedule (``StageSchedule``) plus one hook, ``_enter_phase``:

    epochs [0, P)          pre-train the teacher on labelled cases; keep K snapshots            (Alg. 1, line 1)
    epoch P                rank unlabelled cases by Eq. 1, label the reliable half with the
                           teacher                                                           (lines 2-4)
    epochs [P, P+S1)       stage 1: labelled + reliable pseudo-labelled cases                   (line 5)
    epoch P+S1             refresh the pseudo-labels of all unlabelled cases with the student   (line 6)
    epochs [P+S1, P+S1+S2) stage 2: labelled + all pseudo-labelled cases                        (line 7)

This class is *plain self-training* (stage 1 empty, no ranking, cross entropy on pseudo-labels); the
sample-sorting and DualUnc trainers only override attributes and the network/loss hooks.

Resume (`nnUNetv2_train ... --c`): everything a phase needs is derived from the epoch counter and files written
atomically (snapshot weights, the ranking table, pseudo-label folders with a manifest). Ranking and
pseudo-labelling always read the saved weights of the epoch they belong to, never the live network, so a run
that is killed and resumed computes exactly what an uninterrupted run computes.
"""
import os
import shutil
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.configuration import default_num_processes
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import autocast, nn
from torch._dynamo import OptimizedModule
from tqdm import tqdm

from nnunetv2_dualunc.atomic_files import write_via_temporary
from nnunetv2_dualunc.data.checks import check_labelled_preprocessed_folder
from nnunetv2_dualunc.data.pseudo_labels import (check_manifest, pseudo_label_folder, pseudo_label_from_probabilities,
                                                 reset_folder, write_manifest, write_pseudo_labelled_case)
from nnunetv2_dualunc.data.unlabelled import load_unlabelled_identifiers, preprocess_unlabelled
from nnunetv2_dualunc.method.losses import PseudoLabelCrossEntropyLoss
from nnunetv2_dualunc.method.ranking import (RankedCase, rank_cases, ranking_settings_path, reliable_cases,
                                             reusable_ranking, sample_uncertainty, write_ranking)
from nnunetv2_dualunc.method.schedule import Phase, PhasePolyLRScheduler, ScheduleError, StageSchedule

RANKING_FILE = "unlabelled_ranking.tsv"
SNAPSHOT_FOLDER = "snapshots"


def _as_list(output) -> list:
    """nnU-Net returns a list of scales with deep supervision and a tensor without; treat both as a list."""
    return list(output) if isinstance(output, (list, tuple)) else [output]


def unwrapped_network(trainer: nnUNetTrainer) -> nn.Module:
    """The trainer's network itself, without the DDP and torch.compile wrappers (whose state-dict keys differ)."""
    module = trainer.network.module if trainer.is_ddp else trainer.network
    return module._orig_mod if isinstance(module, OptimizedModule) else module


def atomic_torch_save(obj, path: str, before_replace: Optional[Callable[[str], None]] = None) -> None:
    """torch.save to a temporary file that is then renamed over path: a reader sees the old file or the new one,
    never half of one. before_replace(temporary_file) runs once the temporary file is complete."""
    write_via_temporary(path, lambda tmp: torch.save(obj, tmp), before_replace)


class nnUNetTrainerSelfTraining(nnUNetTrainer):
    # --- budget (epochs of nnU-Net's 250 iterations); the paper trains 200 epochs per phase -------------------
    pretrain_epochs: int = 200
    stage1_epochs: int = 0  # > 0 switches on the sample ranking (Eq. 1) and the reliable-first stage
    stage2_epochs: int = 400
    iterations_per_epoch: Optional[int] = None  # None: nnU-Net's default (250)
    val_iterations_per_epoch: Optional[int] = None  # None: nnU-Net's default (50)
    # --- ranking ---------------------------------------------------------------------------------------------
    num_snapshots: int = 5  # K; spread over the second half of pre-training, the last one is the teacher
    snapshot_epochs: Optional[tuple] = None  # explicit completed-epoch counts instead of the even spread
    reliable_fraction: float = 0.5
    # Eq. 1 per voxel the teacher labels foreground instead of per image voxel (not the paper's; see method/ranking)
    uncertainty_per_foreground_voxel: bool = False
    # --- pseudo-labels -----------------------------------------------------------------------------------------
    pseudo_label_mirroring: bool = False  # test-time mirroring when labelling: ~2^d times slower
    # unlabelled samples per iteration, relative to the labelled batch size from the plans (1.0: as many)
    unlabelled_batch_fraction: float = 1.0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.label_manager.has_regions:
            raise RuntimeError(
                f"{self.__class__.__name__} does not support region-based labels (dataset.json 'regions_class_order'"
                f", sigmoid outputs): the KL term and pseudo-labels are defined for softmax classes. Train this "
                f"dataset with nnUNetTrainer, or convert it to mutually exclusive labels.")
        if self.is_ddp:
            raise RuntimeError(
                f"{self.__class__.__name__} does not support multi-GPU training (-num_gpus > 1) yet: ranking and "
                f"pseudo-labelling are not sharded across ranks. Train with a single GPU.")
        self.stage_schedule = StageSchedule(
            self.pretrain_epochs, self.stage1_epochs, self.stage2_epochs, self.num_snapshots,
            explicit_snapshot_epochs=self.snapshot_epochs)
        self.num_epochs = self.stage_schedule.total_epochs
        if not 0.0 < self.reliable_fraction <= 1.0:  # else rank_cases would refuse it only after pre-training
            raise ScheduleError(f"{self.__class__.__name__}.reliable_fraction = {self.reliable_fraction}: it must be "
                                f"in (0, 1] (the paper's 0.5 = the more certain half is reliable).")
        if self.iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.iterations_per_epoch
        if self.val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.val_iterations_per_epoch
        # an epoch is the most an interruption may cost; phase boundaries are always on disk
        self.save_every = 1
        self.unlabelled_preprocessed_folder: Optional[str] = None
        self.unlabelled_cases: List[str] = []
        self.dataloader_unlabelled = None
        self.active_phase: Optional[Phase] = None

    # ------------------------------------------------------------------------------------------ nnU-Net hooks
    def configure_optimizers(self):
        optimizer, _ = super().configure_optimizers()
        return optimizer, PhasePolyLRScheduler(optimizer, self.initial_lr, self.stage_schedule)

    def _build_loss(self):
        """Eq. 5: (Dice + CE) / 2 on labelled cases (nnU-Net's default sums them). The unsupervised loss is built
        here too, so it sees the same deep-supervision scales and weights as the supervised one."""
        loss = super()._build_loss()
        compound = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
        compound.weight_ce = compound.weight_dice = 0.5
        weights = loss.weight_factors if isinstance(loss, DeepSupervisionWrapper) else (1.0,)
        self.unsupervised_loss = DeepSupervisionWrapper(self.pseudo_label_loss(), weights)
        return loss

    def pseudo_label_loss(self) -> nn.Module:
        """The per-scale loss on pseudo-labelled outputs. Plain self-training: cross entropy (Eq. 3)."""
        return PseudoLabelCrossEntropyLoss()

    def on_train_start(self):
        # Bad or missing labelled/unlabelled data must fail before any training time is spent.
        self._check_labelled_preprocessed_data()
        self._prepare_unlabelled_data()
        if self.current_epoch == 0:
            self._forget_previous_run()
        super().on_train_start()
        self.print_to_log_file(
            f"Self-training schedule: pre-train {self.stage_schedule.pretrain_epochs}, stage 1 "
            f"{self.stage_schedule.stage1_epochs}, stage 2 {self.stage_schedule.stage2_epochs} epochs; "
            f"snapshots after epochs {self.stage_schedule.snapshot_epochs if self.stage_schedule.uses_ranking else '-'};"
            f" {len(self.unlabelled_cases)} unlabelled cases")

    def on_epoch_start(self):
        super().on_epoch_start()
        phase = self.stage_schedule.phase_at(self.current_epoch)
        if phase is not self.active_phase:
            self._enter_phase(phase)

    def on_epoch_end(self):
        # Weights for ranking/pseudo-labelling are written before nnU-Net's checkpoint of the same epoch, so a
        # checkpoint on disk always implies the snapshots up to its epoch exist.
        completed = self.current_epoch + 1
        if completed in self.stage_schedule.weight_epochs:
            self._save_weights(completed)
        super().on_epoch_end()

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file first: a kill mid-write never corrupts the last one."""
        write_via_temporary(filename, super().save_checkpoint)

    def on_train_epoch_end(self, train_outputs: List[dict]):
        unsupervised = [o.pop("loss_unsupervised") for o in train_outputs if "loss_unsupervised" in o]
        super().on_train_epoch_end(train_outputs)
        if unsupervised:  # one host sync per epoch, not per iteration
            self.print_to_log_file(f"unsupervised loss: {torch.stack(unsupervised).mean().item():.4f}")

    def on_train_end(self):
        super().on_train_end()
        self._stop_unlabelled_loader()

    def train_step(self, batch: dict) -> dict:
        """Eq. 6: supervised loss on a labelled batch + unsupervised loss on a pseudo-labelled batch, in one
        forward pass over both (instance norm keeps the samples independent)."""
        data, target = self._to_device(batch)
        n_labelled = data.shape[0]
        pseudo_target = None
        if self.dataloader_unlabelled is not None:  # set by _enter_phase for phases that use unlabelled cases
            data_u, pseudo_target = self._to_device(next(self.dataloader_unlabelled))
            data = torch.cat((data, data_u))

        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            heads = [_as_list(h) for h in self.forward_heads(data)]
            labelled = [[scale[:n_labelled] for scale in head] for head in heads]
            loss = sum(self._supervised_loss(head, target) for head in labelled)
            result = {}
            if pseudo_target is not None:
                unlabelled = [[scale[n_labelled:] for scale in head] for head in heads]
                loss_u = self.unsupervised_loss(*unlabelled, pseudo_target)
                loss = loss + loss_u
                result["loss_unsupervised"] = loss_u.detach()
        self._apply_gradients(loss)
        result["loss"] = loss.detach().cpu().numpy()
        return result

    # -------------------------------------------------------------------------------- overridable method hooks
    def forward_heads(self, data: torch.Tensor) -> list:
        """The outputs that losses see: one head (the network's only decoder) for plain self-training."""
        return [self.network(data)]

    def pseudo_label(self, case: str, data: np.ndarray, nonzero_seg: np.ndarray, predictor: "SnapshotPredictor",
                     weights: dict) -> np.ndarray:
        """The label one unlabelled case trains with, in its preprocessed geometry, shaped (1, *spatial): the
        argmax of the given weights' prediction. Benchmarks override it (an oracle with the hidden labels)."""
        probabilities = predictor.probabilities(data, weights)
        return pseudo_label_from_probabilities(probabilities.cpu().numpy(), nonzero_seg)

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
        if phase is Phase.PRETRAIN:
            cases = []
        elif phase is Phase.STAGE1:
            ranking = self._ensure_ranking()  # lines 2-3: Eq. 1, split into D_u1 / D_u2
            cases = reliable_cases(ranking)
            self._ensure_pseudo_labels(phase, cases, self.stage_schedule.teacher_epoch)  # line 4
        else:
            cases = self.unlabelled_cases  # line 6: refresh with the student (the teacher without stage 1)
            self._ensure_pseudo_labels(phase, cases, self.stage_schedule.student_epoch)
        self._stop_unlabelled_loader()
        if cases:
            self.dataloader_unlabelled = self._make_unlabelled_loader(
                pseudo_label_folder(self.output_folder, phase.value), cases)
        self.active_phase = phase
        self.print_to_log_file(f"phase '{phase.value}': {len(cases)} pseudo-labelled cases in use")

    def _ensure_ranking(self) -> List[RankedCase]:
        """Eq. 1 scores of the unlabelled cases, split by reliable_fraction. Scores on disk are reused only when
        they were computed with the same snapshots and normalisation; the split always uses the current fraction."""
        path = os.path.join(self.output_folder, RANKING_FILE)
        snapshots = self.stage_schedule.snapshot_epochs
        score_settings = {"snapshot_epochs": list(snapshots),
                          "uncertainty_per_foreground_voxel": bool(self.uncertainty_per_foreground_voxel)}
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
        predictor = self._snapshot_predictor()
        weights = {e: self._load_weights(e) for e in snapshots}
        scores = {}
        for case in tqdm(self.unlabelled_cases, desc="Ranking unlabelled cases", disable=self.local_rank != 0):
            data = self._load_unlabelled_image(case)
            teacher = predictor.probabilities(data, weights[snapshots[-1]])
            earlier = (predictor.probabilities(data, weights[e]) for e in snapshots[:-1])
            scores[case] = sample_uncertainty(teacher, earlier, self.uncertainty_per_foreground_voxel)
            self.on_case_scored(case, scores[case])
        ranking = rank_cases(scores, self.reliable_fraction)
        write_ranking(path, ranking, settings)
        self.print_to_log_file(f"ranking written to {path}")
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
        predictor = self._snapshot_predictor()
        weights = self._load_weights(weights_epoch)
        dataset = nnUNetDatasetBlosc2(self.unlabelled_preprocessed_folder, list(cases))
        for case in tqdm(cases, desc=f"Pseudo-labelling ({phase.value})", disable=self.local_rank != 0):
            data, nonzero_seg, _, properties = dataset.load_case(case)
            data = np.asarray(data[:])
            label = self.pseudo_label(case, data, np.asarray(nonzero_seg[:]), predictor, weights)
            # with an ignore label nnU-Net's loader samples patches around annotated voxels: every pseudo-label is one
            annotated = self.label_manager.all_labels if self.label_manager.has_ignore_label else None
            write_pseudo_labelled_case(folder, case, data, label, properties, self.configuration_manager.patch_size,
                                       self.label_manager.foreground_labels, annotated)
            self.on_case_pseudo_labelled(phase, case)
        write_manifest(folder, provenance, cases)

    # ----------------------------------------------------------------------------------------- plumbing
    def _prepare_unlabelled_data(self) -> None:
        workers = max(1, min(default_num_processes, os.cpu_count() or 1))
        self.unlabelled_preprocessed_folder = preprocess_unlabelled(
            self.plans_manager.dataset_name, self.configuration_name, self.plans_manager.plans_name, workers)
        self.unlabelled_cases = load_unlabelled_identifiers(self.unlabelled_preprocessed_folder)

    def _check_labelled_preprocessed_data(self) -> None:
        """Open every preprocessed training case's files (headers only): a damaged file would otherwise stop
        training later, inside a data-loader worker, without naming the file."""
        command = (f"nnUNetv2_preprocess -d {convert_dataset_name_to_id(self.plans_manager.dataset_name)} -c "
                   f"{self.configuration_name} -plans_name {self.plans_manager.plans_name}")
        check_labelled_preprocessed_folder(self.preprocessed_dataset_folder, command)

    def _forget_previous_run(self) -> None:
        """A run that starts from epoch 0 (no --c, or nothing to resume) must not reuse the snapshots, ranking or
        pseudo-labels that an earlier run left in the same fold folder: they came from other weights."""
        ranking = os.path.join(self.output_folder, RANKING_FILE)
        leftovers = [ranking, ranking_settings_path(ranking)] + \
            [os.path.join(self.output_folder, name) for name in (SNAPSHOT_FOLDER, "pseudo_labels")]
        leftovers = [path for path in leftovers if os.path.exists(path)]
        if leftovers and self.local_rank == 0:
            self.print_to_log_file(f"fresh run: removing the previous run's {', '.join(leftovers)}")
            for path in leftovers:
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

    def _load_unlabelled_image(self, case: str) -> np.ndarray:
        data, _, _, _ = nnUNetDatasetBlosc2(self.unlabelled_preprocessed_folder, [case]).load_case(case)
        return np.asarray(data[:])

    def _weights_path(self, completed_epochs: int) -> str:
        return os.path.join(self.output_folder, SNAPSHOT_FOLDER, f"weights_after_epoch_{completed_epochs:04d}.pth")

    def _network_module(self) -> nn.Module:
        return unwrapped_network(self)

    def _save_weights(self, completed_epochs: int) -> None:
        if self.local_rank != 0:
            return
        os.makedirs(os.path.join(self.output_folder, SNAPSHOT_FOLDER), exist_ok=True)
        atomic_torch_save({"network_weights": self._network_module().state_dict(), "epoch": completed_epochs},
                          self._weights_path(completed_epochs), before_replace=self.on_snapshot_written)

    def _load_weights(self, completed_epochs: int) -> dict:
        path = self._weights_path(completed_epochs)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: the weights after epoch {completed_epochs} are needed for ranking or "
                f"pseudo-labelling. They are written during training; restart this fold without --c.")
        return torch.load(path, map_location="cpu", weights_only=True)["network_weights"]

    def _snapshot_predictor(self) -> "SnapshotPredictor":
        network = self.build_network_architecture(
            self.plans_manager, self.configuration_manager, self.num_input_channels,
            self.label_manager.num_segmentation_heads, enable_deep_supervision=False).to(self.device)
        return SnapshotPredictor(network, self.plans_manager, self.configuration_manager, self.dataset_json,
                                 self.device, self.pseudo_label_mirroring, self.__class__.__name__,
                                 self.inference_allowed_mirroring_axes)

    def _to_device(self, batch: dict):
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in _as_list(target)]
        return data, target

    def _supervised_loss(self, head: list, target: list) -> torch.Tensor:
        if isinstance(self.loss, DeepSupervisionWrapper):
            return self.loss(head, target)
        return self.loss(head[0], target[0])

    def _apply_gradients(self, loss: torch.Tensor) -> None:
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()

    def _make_unlabelled_loader(self, folder: str, cases: List[str]):
        """nnU-Net's loader and training augmentation over the pseudo-labelled cases: image and pseudo-label get
        the same spatial transforms, and the pseudo-label is downsampled for deep supervision like a label."""
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        transforms = self.get_training_transforms(
            self.configuration_manager.patch_size, rotation, self._get_deep_supervision_scales(), mirror_axes,
            dummy_2d, use_mask_for_norm=self.configuration_manager.use_mask_for_norm, is_cascaded=self.is_cascaded,
            foreground_labels=self.label_manager.foreground_labels, regions=None,
            ignore_label=self.label_manager.ignore_label)
        batch_size = max(1, round(self.batch_size * self.unlabelled_batch_fraction))
        loader = nnUNetDataLoader(
            nnUNetDatasetBlosc2(folder, list(cases)), batch_size, initial_patch_size,
            self.configuration_manager.patch_size, self.label_manager,
            oversample_foreground_percent=self.oversample_foreground_percent, transforms=transforms,
            probabilistic_oversampling=self.probabilistic_oversampling)
        n_proc = get_allowed_n_proc_DA()
        if n_proc == 0:
            return SingleThreadedAugmenter(loader, None)
        return NonDetMultiThreadedAugmenter(loader, None, n_proc, max(6, n_proc // 2), None,
                                            pin_memory=self.device.type == "cuda", wait_time=0.002)

    def _stop_unlabelled_loader(self) -> None:
        if isinstance(self.dataloader_unlabelled, NonDetMultiThreadedAugmenter):
            self.dataloader_unlabelled._finish()
        self.dataloader_unlabelled = None


def sliding_window_predictor(device: torch.device, use_mirroring: bool) -> nnUNetPredictor:
    """nnU-Net's predictor as the plugin uses it: nnU-Net's tiling defaults, quiet, on the device when it is a GPU."""
    return nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=use_mirroring,
                           perform_everything_on_device=device.type == "cuda", device=device, verbose=False,
                           allow_tqdm=False)


class SnapshotPredictor:
    """Softmax predictions of preprocessed cases with given weights, through nnU-Net's sliding-window predictor.

    Uses its own network instance, so the training network, its optimizer state and torch.compile are untouched.
    """

    def __init__(self, network: nn.Module, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                 dataset_json: dict, device: torch.device, use_mirroring: bool = False,
                 trainer_name: str = "nnUNetTrainer", mirroring_axes: Optional[Tuple[int, ...]] = None,
                 parameters: Optional[List[dict]] = None):
        """parameters: weights for the predictor's own file-based prediction (predict_from_files); probabilities()
        takes its weights per call and does not need them."""
        self.network = network
        self.predictor = sliding_window_predictor(device, use_mirroring)
        self.predictor.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                             trainer_name, mirroring_axes)
        self._loaded = None

    @torch.no_grad()
    def probabilities(self, data: np.ndarray, weights: dict) -> torch.Tensor:
        if self._loaded is not weights:
            self.network.load_state_dict(weights)
            self._loaded = weights
        logits = self.predictor.predict_sliding_window_return_logits(torch.from_numpy(data))
        return self.predictor.label_manager.apply_inference_nonlin(logits).float()
