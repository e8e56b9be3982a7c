"""nnU-Net's sliding-window predictor as the plugin uses it, and predictions with given weights.

Training (ranking, pseudo-labels), the uncertainty maps and the benchmarks all predict through these, so the
tiling, Gaussian weighting and mirroring settings are the same everywhere.
"""
from typing import Optional, Tuple

import numpy as np
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn


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
                 trainer_name: str = "nnUNetTrainer", mirroring_axes: Optional[Tuple[int, ...]] = None):
        self.network = network
        self.predictor = sliding_window_predictor(device, use_mirroring)
        self.predictor.manual_initialization(network, plans_manager, configuration_manager, None, dataset_json,
                                             trainer_name, mirroring_axes)
        self._loaded = None

    @torch.no_grad()
    def probabilities(self, data: np.ndarray, weights: dict) -> torch.Tensor:
        if self._loaded is not weights:
            self.network.load_state_dict(weights)
            self._loaded = weights
        logits = self.predictor.predict_sliding_window_return_logits(torch.from_numpy(data))
        return self.predictor.label_manager.apply_inference_nonlin(logits).float()
