"""Warm start: begin training from a model the user already has, instead of pre-training from scratch.

The "drop into an existing pipeline" case: a lab has trained ``nnUNetTrainer`` on its labelled cases (fold F) and now
adds unlabelled images. A warm-started trainer loads that fold's checkpoint at epoch 0 and spends its budget on what
the existing model lacks. For DualUnc that is a short first phase (both decoders supervised, the auxiliary decoder
catches up, Eq. 1's K snapshots are taken) and then the two pseudo-label stages of Algorithm 1.

Where the checkpoint comes from, in order:
    $DUALUNC_WARM_START_CHECKPOINT                          any checkpoint file
    nnUNet_results/<dataset>/<warm_start_trainer>__<plans>__<configuration>/fold_<F>/checkpoint_final.pth

Before any work is done the checkpoint is checked against the run: same dataset, plans, configuration (its
plans entry), fold, label set and network weights (names and shapes). A mismatch is an error that names the file and
what differs. The weights are loaded at epoch 0 only; a resumed run (``--c``) continues from its own checkpoint.
"""
import os
from typing import Dict, List

import torch
from nnunetv2.utilities.file_path_utilities import get_output_folder
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from nnunetv2_dualunc.network.dual_decoder import AUX_DECODER_PREFIX
from nnunetv2_dualunc.training.semi_supervised import unwrapped_network

WARM_START_VARIABLE = "DUALUNC_WARM_START_CHECKPOINT"
MAIN_DECODER_PREFIX = "decoder."


class WarmStartError(RuntimeError):
    """The warm-start checkpoint is missing or belongs to another dataset, plans, configuration, fold or network."""


def read_checkpoint(path: str) -> dict:
    """nnU-Net's checkpoint dictionary (it pickles its init arguments, hence weights_only=False: load only your own
    files, as nnU-Net itself does)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # truncated file, not a torch file
        raise WarmStartError(f"Cannot read the warm-start checkpoint {path}: {error}. Train the model again or point "
                             f"${WARM_START_VARIABLE} at an intact checkpoint_final.pth.") from error
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint or "init_args" not in checkpoint:
        raise WarmStartError(f"{path} is not an nnU-Net training checkpoint (no 'network_weights' / 'init_args'). "
                             f"Use a checkpoint_final.pth written by nnUNetv2_train.")
    return checkpoint


def checkpoint_differences(checkpoint: dict, plans: dict, configuration: str, fold, dataset_json: dict) -> List[str]:
    """What makes the checkpoint's run different from this one (empty: compatible). Compares what decides the
    preprocessing, the network and the meaning of its outputs; the trainer class and its budget may differ."""
    init = checkpoint["init_args"]
    theirs_plans, ours_plans = init.get("plans", {}), plans
    differences = []
    for key in ("dataset_name", "plans_name"):
        if theirs_plans.get(key) != ours_plans.get(key):
            differences.append(f"{key}: checkpoint {theirs_plans.get(key)!r}, this run {ours_plans.get(key)!r}")
    if init.get("configuration") != configuration:
        differences.append(f"configuration: checkpoint {init.get('configuration')!r}, this run {configuration!r}")
    elif not differences:
        ours = PlansManager(ours_plans).get_configuration(configuration).configuration
        try:
            theirs = PlansManager(theirs_plans).get_configuration(configuration).configuration
        except Exception:  # the configuration is missing from the checkpoint's plans
            theirs = {}
        changed = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if changed:
            differences.append(f"plans entry of configuration {configuration!r} differs in {', '.join(changed)} "
                               f"(the plans were changed after the checkpoint was trained)")
    if str(init.get("fold")) != str(fold):
        differences.append(f"fold: checkpoint {init.get('fold')!r}, this run {fold!r} (another fold's model has seen "
                           f"this fold's validation cases)")
    theirs_labels = (init.get("dataset_json") or {}).get("labels")
    if theirs_labels != dataset_json.get("labels"):
        differences.append(f"labels: checkpoint {theirs_labels}, this run {dataset_json.get('labels')}")
    return differences


def weight_differences(network: nn.Module, weights: Dict[str, torch.Tensor]) -> List[str]:
    """Parameters of network (auxiliary decoder aside: a plain model has none) that the weights lack or shape
    differently, plus weights the network has no place for."""
    ours = {k: v.shape for k, v in network.state_dict().items() if not k.startswith(AUX_DECODER_PREFIX)}
    theirs = {k: v.shape for k, v in weights.items() if not k.startswith(AUX_DECODER_PREFIX)}
    differences = [f"missing {k}" for k in sorted(set(ours) - set(theirs))]
    differences += [f"unexpected {k}" for k in sorted(set(theirs) - set(ours))]
    differences += [f"{k}: checkpoint {tuple(theirs[k])}, network {tuple(ours[k])}"
                    for k in sorted(set(ours) & set(theirs)) if ours[k] != theirs[k]]
    return differences


def warm_start_weights(network: nn.Module, weights: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The state dict to load: the checkpoint's weights, and for an auxiliary decoder that the checkpoint lacks, its
    convolution stages and segmentation layers copied from the trained main decoder wherever the shapes agree.

    Why copy: the auxiliary decoder differs from the main one only in its upsampling, and a random one would make
    KL(main || aux) large everywhere, so Eq. 4 would switch the pseudo-labels off (exp(-KL) ~ 0) and its +KL term
    would pull the trained main decoder towards an untrained one. Its upsampling convolutions keep their fresh
    initialisation, so the two decoders still differ.
    """
    state = network.state_dict()
    merged = dict(state)
    merged.update({k: v for k, v in weights.items() if k in state})
    if not any(k.startswith(AUX_DECODER_PREFIX) for k in weights):
        for key in state:
            if not key.startswith(AUX_DECODER_PREFIX):
                continue
            source = MAIN_DECODER_PREFIX + key[len(AUX_DECODER_PREFIX):]
            if source in weights and weights[source].shape == state[key].shape:
                merged[key] = weights[source]
    return merged


class WarmStartMixin:
    """Put first in the bases of an nnUNetTrainer subclass: its run starts from an existing model of the same fold.

    warm_start_trainer names the trainer whose fold folder holds the model (nnU-Net's results layout);
    $DUALUNC_WARM_START_CHECKPOINT overrides the whole path.
    """

    warm_start_trainer: str = "nnUNetTrainer"
    warm_start_checkpoint_name: str = "checkpoint_final.pth"

    def warm_start_checkpoint_path(self) -> str:
        explicit = os.environ.get(WARM_START_VARIABLE)
        if explicit:
            return os.path.abspath(explicit)
        folder = get_output_folder(self.plans_manager.dataset_name, self.warm_start_trainer,
                                   self.plans_manager.plans_name, self.configuration_name, self.fold)
        return os.path.join(folder, self.warm_start_checkpoint_name)

    def on_train_start(self):
        checkpoint = self._checked_warm_start_checkpoint() if self.current_epoch == 0 else None
        super().on_train_start()
        if checkpoint is not None:
            module = unwrapped_network(self)
            module.load_state_dict(warm_start_weights(module, checkpoint["network_weights"]))
            self.print_to_log_file(f"warm start: weights loaded from {self.warm_start_checkpoint_path()} (trained for "
                                   f"{checkpoint.get('current_epoch')} epochs by {checkpoint.get('trainer_name')})")

    def _checked_warm_start_checkpoint(self) -> dict:
        """Read and check the checkpoint before any preprocessing or training time is spent."""
        path = self.warm_start_checkpoint_path()
        if not os.path.isfile(path):
            raise WarmStartError(
                f"{self.__class__.__name__} starts from an existing model, but {path} does not exist. Train it first:"
                f" nnUNetv2_train {self.plans_manager.dataset_name} {self.configuration_name} {self.fold} -tr "
                f"{self.warm_start_trainer} -p {self.plans_manager.plans_name}   (or set ${WARM_START_VARIABLE} to "
                f"the checkpoint of a model of this dataset, plans, configuration and fold)")
        checkpoint = read_checkpoint(path)
        differences = checkpoint_differences(checkpoint, self.plans_manager.plans, self.configuration_name,
                                             self.fold, self.dataset_json)
        if not differences:
            channels = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
            network = self.build_network_architecture(self.plans_manager, self.configuration_manager, channels,
                                                      self.label_manager.num_segmentation_heads,
                                                      self.enable_deep_supervision)
            differences = [f"network weights: {d}" for d in weight_differences(network, checkpoint["network_weights"])]
        if differences:
            shown = differences[:8] + ([f"... {len(differences) - 8} more"] if len(differences) > 8 else [])
            raise WarmStartError(
                f"The warm-start checkpoint {path} does not belong to this run "
                f"({self.plans_manager.dataset_name}, plans {self.plans_manager.plans_name}, configuration "
                f"{self.configuration_name}, fold {self.fold}):\n  " + "\n  ".join(shown) +
                "\nUse the checkpoint of a model trained on the same dataset, plans, configuration and fold.")
        return checkpoint
