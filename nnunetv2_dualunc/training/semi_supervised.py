"""The semi-supervised plumbing on top of nnU-Net's trainer, for any method that trains on labelled batches plus
batches of (pseudo-)labelled unlabelled cases: Algorithm 1 (training/self_training.py) builds on it, and so could a
consistency method such as Mean Teacher.

What it adds to nnUNetTrainer:
- the unlabelled cases, preprocessed with the run's own plans before training starts (data/unlabelled.py), and a
  second data loader over whichever of them a subclass puts in use (``use_unlabelled_cases``), with nnU-Net's own
  training augmentation;
- a train step that concatenates a labelled and an unlabelled batch in one forward pass and adds the loss hook
  ``pseudo_label_loss`` on the unlabelled outputs to the supervised loss (Eq. 6), optionally after copy-paste mixing
  of the unlabelled batch with the labelled one (``copy_paste_fraction``, method/copy_paste.py); other methods
  (training/baselines/) change the second batch (``second_batch``, ``second_batch_targets``), its loss
  (``second_batch_loss``) or its weight (``unsupervised_weight``);
- one switch, ``second_batch_from_labelled``, that turns any such trainer into the control of its own recipe: the
  second batch comes from the labelled training cases with their true labels (same network, losses, mixing, batch
  sizes, phases and steps; not one unlabelled image read). A gain over that twin is what the unlabelled images add;
  a gain of the twin over nnU-Net is the recipe's;
- start-up checks of the preprocessed labelled files and a checkpoint that a kill never leaves half-written.
"""
import os
from typing import List, Optional

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.configuration import default_num_processes
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast, nn
from torch._dynamo import OptimizedModule

from nnunetv2_dualunc.atomic_files import write_via_temporary
from nnunetv2_dualunc.data.checks import check_labelled_preprocessed_folder
from nnunetv2_dualunc.data.unlabelled import load_unlabelled_identifiers, preprocess_unlabelled
from nnunetv2_dualunc.data.unlabelled_batches import UniformPatchLoader, UnlabelledImagesDataset
from nnunetv2_dualunc.method.copy_paste import copy_paste
from nnunetv2_dualunc.method.losses import PseudoLabelCrossEntropyLoss
from nnunetv2_dualunc.plots import plot_semi_supervised_progress
from nnunetv2_dualunc.run_layout import SEMI_SUPERVISED_PROGRESS_FILE

#: per-epoch values a semi-supervised run adds to nnU-Net's logger: the second batch's loss and the mean KL between
#: the decoders on it (NaN where an epoch has none)
PROGRESS_KEYS = ("unsupervised_losses", "mean_kl")


def _as_list(output) -> list:
    """nnU-Net returns a list of scales with deep supervision and a tensor without; treat both as a list."""
    return list(output) if isinstance(output, (list, tuple)) else [output]


def unwrapped_network(trainer: nnUNetTrainer) -> nn.Module:
    """The trainer's network itself, without the DDP and torch.compile wrappers (whose state-dict keys differ)."""
    module = trainer.network.module if trainer.is_ddp else trainer.network
    return module._orig_mod if isinstance(module, OptimizedModule) else module


class nnUNetTrainerSemiSupervised(nnUNetTrainer):
    iterations_per_epoch: Optional[int] = None  # None: nnU-Net's default (250)
    val_iterations_per_epoch: Optional[int] = None  # None: nnU-Net's default (50)
    # unlabelled samples per iteration, relative to the labelled batch size from the plans (1.0: as many)
    unlabelled_batch_fraction: float = 1.0
    # side of the box that bidirectional copy-paste mixes between the labelled and the pseudo-labelled batch,
    # relative to the patch (0: off, the paper's Eq. 6; method/copy_paste.py, nnUNetTrainerDualUncPlus)
    copy_paste_fraction: float = 0.0
    # the recipe-without-unlabelled-images control (see the module docstring): every second batch is drawn from the
    # labelled training cases with their labels, and no unlabelled image is preprocessed, ranked or pseudo-labelled
    second_batch_from_labelled: bool = False

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
        if not 0.0 <= self.copy_paste_fraction < 1.0:
            raise ValueError(f"{self.__class__.__name__}.copy_paste_fraction = {self.copy_paste_fraction}: it must be "
                             f"in [0, 1) (the box's side relative to the patch; 0 switches copy-paste off).")
        if self.iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.iterations_per_epoch
        if self.val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.val_iterations_per_epoch
        self.unlabelled_preprocessed_folder: Optional[str] = None
        self.unlabelled_cases: List[str] = []
        self.dataloader_unlabelled = None
        # whether the second batch in use holds labelled cases with their true labels (use_labelled_second_batch)
        self.second_batch_is_labelled = False
        self._add_progress_keys()

    # ------------------------------------------------------------------------------------------ nnU-Net hooks
    def _build_loss(self):
        """nnU-Net's supervised loss; the unsupervised one is built here too, so that it sees the same
        deep-supervision scales and weights."""
        loss = super()._build_loss()
        weights = loss.weight_factors if isinstance(loss, DeepSupervisionWrapper) else (1.0,)
        self.unsupervised_loss = DeepSupervisionWrapper(self.pseudo_label_loss(), weights)
        return loss

    def pseudo_label_loss(self) -> nn.Module:
        """The per-scale loss on the unlabelled cases' outputs and their targets. Default: cross entropy (Eq. 3).
        Voxels of the ignore label count in no loss: pseudo-labels never hold it, but a box that copy-paste takes
        from a labelled case, or a second batch of labelled cases, can."""
        return PseudoLabelCrossEntropyLoss(ignore_index=self.label_manager.ignore_label)

    def on_train_start(self):
        # Bad or missing labelled/unlabelled data must fail before any training time is spent.
        self.prepare_training_data()
        super().on_train_start()

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file first: a kill mid-write never corrupts the last one.
        What extra_checkpoint_state returns goes into the same file, so it is never out of step with the weights."""
        write_via_temporary(filename, super().save_checkpoint, before_replace=self._add_extra_checkpoint_state)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)  # nnU-Net 2.8 reads only a path here, not a dict
        self._add_progress_keys()  # a checkpoint written without them replaced the logger's lists
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, str):  # read again, as nnU-Net reads it: a resume does this once
            checkpoint = torch.load(checkpoint, map_location=self.device, weights_only=False)
        self.restore_extra_checkpoint_state(checkpoint)

    def extra_checkpoint_state(self) -> dict:
        """Training state of a subclass beyond nnU-Net's (a teacher network, say), stored in nnU-Net's checkpoint
        under these keys so that a resumed run gets it back; {}: none."""
        return {}

    def restore_extra_checkpoint_state(self, checkpoint: dict) -> None:
        """Takes back what extra_checkpoint_state stored (after nnU-Net's own load_checkpoint)."""

    def on_train_epoch_end(self, train_outputs: List[dict]):
        per_epoch = {}
        for key in PROGRESS_KEYS:  # one host sync per epoch, not per iteration; NaN in epochs without a second batch
            values = [o.pop(key) for o in train_outputs if key in o]
            per_epoch[key] = torch.stack(values).mean().item() if values else float("nan")
        super().on_train_epoch_end(train_outputs)
        for key, value in per_epoch.items():
            self.logger.log(key, value, self.current_epoch)
        if not np.isnan(per_epoch["unsupervised_losses"]):
            self.print_to_log_file(f"unsupervised loss: {per_epoch['unsupervised_losses']:.4f}")

    def on_epoch_end(self):
        super().on_epoch_end()  # nnU-Net's progress.png
        if self.local_rank == 0:
            plot_semi_supervised_progress(self.logger.local_logger.my_fantastic_logging, self.phase_starts(),
                                          os.path.join(self.output_folder, SEMI_SUPERVISED_PROGRESS_FILE))

    def phase_starts(self) -> List[tuple]:
        """(first epoch, name) of each training phase, marked in the progress picture; none by default."""
        return []

    def on_train_end(self):
        super().on_train_end()
        self._stop_unlabelled_loader()

    def train_step(self, batch: dict) -> dict:
        """Eq. 6: supervised loss on a labelled batch + unsupervised loss on a pseudo-labelled batch, in one
        forward pass over both (instance norm keeps the samples independent)."""
        data, target = self._to_device(batch)
        n_labelled = data.shape[0]
        pseudo_target = None
        if self.dataloader_unlabelled is not None:  # see use_unlabelled_cases
            data_u, pseudo_target = self.second_batch(data, target, *self._to_device(next(self.dataloader_unlabelled)))
            data = torch.cat((data, data_u))

        self.optimizer.zero_grad(set_to_none=True)
        with self.training_autocast():
            heads = [_as_list(h) for h in self.forward_heads(data)]
            labelled = [[scale[:n_labelled] for scale in head] for head in heads]
            loss = sum(self._supervised_loss(head, target) for head in labelled)
            result = {}
            if pseudo_target is not None:
                unlabelled = [[scale[n_labelled:] for scale in head] for head in heads]
                loss_u = self.second_batch_loss(unlabelled, pseudo_target)
                loss = loss + self.unsupervised_weight() * loss_u
                result["unsupervised_losses"] = loss_u.detach()
                result.update(self.unlabelled_diagnostics(unlabelled))
        self._apply_gradients(loss)
        result["loss"] = loss.detach().cpu().numpy()
        return result

    def unlabelled_diagnostics(self, heads: list) -> dict:
        """Per-step values on the second batch's outputs (one list of scales per head) that the progress picture
        shows, as detached tensors keyed by PROGRESS_KEYS; none by default."""
        return {}

    def second_batch(self, data: torch.Tensor, target: List[torch.Tensor], data_u: torch.Tensor,
                     target_u: List[torch.Tensor]) -> tuple:
        """The second batch (images, targets per deep-supervision scale) as the network and losses see it, from the
        labelled batch of this step and the loader's second batch. Default: second_batch_targets, then copy-paste
        mixing with the labelled batch where mixes_copy_paste."""
        target_u = self.second_batch_targets(data_u, target_u)
        if self.mixes_copy_paste():
            data_u, target_u = copy_paste(data, target, data_u, target_u, self.copy_paste_fraction)
        return data_u, target_u

    def second_batch_targets(self, data: torch.Tensor, targets: List[torch.Tensor]) -> List[torch.Tensor]:
        """The targets the second batch trains with, per deep-supervision scale, before any mixing. Default: the
        loader's (stored pseudo-labels, or labels with second_batch_from_labelled)."""
        return targets

    def second_batch_loss(self, heads: list, targets: List[torch.Tensor]) -> torch.Tensor:
        """The loss on the second batch's outputs (one list of scales per head). Default: pseudo_label_loss at every
        deep-supervision scale with nnU-Net's scale weights."""
        return self.unsupervised_loss(*heads, targets)

    def unsupervised_weight(self) -> float:
        """The factor of the second batch's loss in this step (Eq. 6: 1; consistency methods ramp it up)."""
        return 1.0

    def nnunet_scale_loss(self) -> nn.Module:
        """nnU-Net's own loss for one output scale (Dice + CE with its settings and ignore label), for a second batch
        whose targets are labels (copy-paste of labelled cases, a teacher's hard pseudo-labels)."""
        loss = nnUNetTrainer._build_loss(self)
        return loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss

    def mixes_copy_paste(self) -> bool:
        """Whether this step mixes the pseudo-labelled batch with the labelled one (copy_paste_fraction > 0 by
        default; a schedule may switch the mixing off for some epochs)."""
        return bool(self.copy_paste_fraction)

    def forward_heads(self, data: torch.Tensor) -> list:
        """The outputs that losses see: one head (the network's only decoder) by default."""
        return [self.network(data)]

    def prepare_training_data(self) -> None:
        """Runs before nnU-Net's own start of training: checks the labelled files, preprocesses the unlabelled
        cases (finished cases are kept; none with second_batch_from_labelled). Subclasses add what must exist before
        the first epoch."""
        self._check_labelled_preprocessed_data()
        if self.second_batch_from_labelled:
            self.print_to_log_file("second batch from the labelled training cases with their labels "
                                   "(second_batch_from_labelled: the recipe without unlabelled images)")
        else:
            self._prepare_unlabelled_data()

    def use_unlabelled_cases(self, folder: str, cases: List[str]) -> None:
        """From now on each train step adds a batch drawn from these preprocessed cases (with their targets) in
        folder; no cases: labelled batches only."""
        self._stop_unlabelled_loader()
        if cases:
            self.dataloader_unlabelled = self._make_second_loader(nnUNetDatasetBlosc2(folder, list(cases)))

    def use_unlabelled_images(self) -> None:
        """From now on each train step adds a batch of patches drawn uniformly from all unlabelled images, through
        nnU-Net's augmentation; its targets are placeholders that second_batch replaces (online methods)."""
        self._stop_unlabelled_loader()
        if not self.unlabelled_cases:
            raise RuntimeError(f"{self.__class__.__name__} trains on unlabelled images, but none were found for "
                               f"{self.plans_manager.dataset_name}: put them in the raw dataset's imagesUnlabeled/ "
                               f"(README, 'Your own dataset').")
        self.dataloader_unlabelled = self._make_second_loader(
            UnlabelledImagesDataset(self.unlabelled_preprocessed_folder, list(self.unlabelled_cases)),
            UniformPatchLoader)

    def use_labelled_second_batch(self) -> None:
        """From now on each train step adds a second batch drawn from the labelled training cases of this fold,
        with their true labels (second_batch_from_labelled), through the same loader and augmentation."""
        self._stop_unlabelled_loader()
        training_keys, _ = self.do_split()
        self.dataloader_unlabelled = self._make_second_loader(
            self.dataset_class(self.preprocessed_dataset_folder, training_keys,
                               folder_with_segs_from_previous_stage=self.folder_with_segs_from_previous_stage))
        self.second_batch_is_labelled = True

    # ----------------------------------------------------------------------------------------- plumbing
    def _add_progress_keys(self) -> None:
        """The per-epoch lists of PROGRESS_KEYS in nnU-Net's logger (saved in its checkpoints, sent to its other
        loggers), NaN-padded to the epochs already logged: nnU-Net's progress.png cuts every curve to the shortest
        list."""
        logged = self.logger.local_logger.my_fantastic_logging
        epochs = len(logged["train_losses"])
        for key in PROGRESS_KEYS:
            logged.setdefault(key, [])
            logged[key] += [float("nan")] * (epochs - len(logged[key]))

    def _add_extra_checkpoint_state(self, temporary_file: str) -> None:
        extra = self.extra_checkpoint_state()
        if extra:
            checkpoint = torch.load(temporary_file, map_location="cpu", weights_only=False)
            checkpoint.update(extra)
            torch.save(checkpoint, temporary_file)

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

    def _load_unlabelled_image(self, case: str) -> np.ndarray:
        data, _, _, _ = nnUNetDatasetBlosc2(self.unlabelled_preprocessed_folder, [case]).load_case(case)
        return np.asarray(data[:])

    def training_autocast(self):
        """nnU-Net's mixed precision of a training step: autocast on CUDA, nothing elsewhere."""
        return autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context()

    def trained_networks(self) -> List[nn.Module]:
        """The networks whose parameters the optimizer updates (deep co-training has two); their gradients are
        clipped each on its own, as nnU-Net clips its one network."""
        return [self.network]

    def _network_module(self) -> nn.Module:
        return unwrapped_network(self)

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
        for network in self.trained_networks():  # nnU-Net's clipping, per network
            torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()

    def _make_second_loader(self, dataset, loader_class: type = nnUNetDataLoader):
        """nnU-Net's loader and training augmentation over the second batch's cases (pseudo-labelled or labelled):
        image and target get the same spatial transforms, and the target is downsampled for deep supervision like a
        label."""
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        transforms = self.get_training_transforms(
            self.configuration_manager.patch_size, rotation, self._get_deep_supervision_scales(), mirror_axes,
            dummy_2d, use_mask_for_norm=self.configuration_manager.use_mask_for_norm, is_cascaded=self.is_cascaded,
            foreground_labels=self.label_manager.foreground_labels, regions=None,
            ignore_label=self.label_manager.ignore_label)
        batch_size = max(1, round(self.batch_size * self.unlabelled_batch_fraction))
        loader = loader_class(
            dataset, batch_size, initial_patch_size,
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
        self.second_batch_is_labelled = False
