"""Uncertainty maps at inference: where, and in which cases, a trained DualUnc model is unsure.

The two decoders of a DualUnc model disagree where its prediction is unreliable: their voxel-wise KL divergence is
the paper's pixel-level uncertainty (Eq. 2), used in training to down-weight pseudo-labels. The same quantity on new
images tells a user where to look. For every image of a folder this writes

    <case><file ending>        the segmentation (main decoder), as nnUNetv2_predict writes it
    <case>_uncertainty.nii.gz  KL(main || aux) per voxel, float32, in the image's own geometry
    uncertainty_ranking.tsv    the cases, most uncertain first: mean KL over the voxels either decoder labels
                               foreground (the structures, whatever the field of view), and over the whole image
    uncertainty_overview.png   the most uncertain cases, one row each: image, segmentation, uncertainty map and,
                               given a reference folder, the reference

Everything goes through nnU-Net's public pieces: the configuration's preprocessor, the predictor's sliding window
(fold ensembling, Gaussian weighting, test-time mirroring) and its export to the original geometry. The predictor
runs twice per image, once per decoder (``DualDecoderUNet.inference_output``), so a map costs about two predictions.
"""
import math
import os
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder
from torch._dynamo import OptimizedModule

from nnunetv2_dualunc.inference.predictors import sliding_window_predictor
from nnunetv2_dualunc.network.dual_decoder import DualDecoderUNet
from nnunetv2_dualunc.plots import CaseSection, plot_uncertainty_overview
from nnunetv2_dualunc.run_layout import UNCERTAINTY_MAP_SUFFIX, UNCERTAINTY_OVERVIEW_FILE, UNCERTAINTY_RANKING_FILE
from nnunetv2_dualunc.tables import read_tsv, write_tsv

UNCERTAINTY_RANKING_COLUMNS = ("rank", "case", "mean_kl_foreground", "mean_kl_image", "foreground_voxels")
#: rows of uncertainty_overview.png: the most uncertain cases, where a reader looks first
OVERVIEW_CASES = 4

Fold = Union[int, str]


def kl_between_probabilities(p_main: np.ndarray, p_aux: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Eq. 2 on softmax probabilities of shape (classes, *spatial): KL(p_main || p_aux) per voxel, >= 0."""
    p_main = p_main.astype(np.float64)
    kl = (p_main * (np.log(p_main + eps) - np.log(p_aux.astype(np.float64) + eps))).sum(axis=0)
    return np.maximum(kl, 0.0).astype(np.float32)  # eps can push a perfect agreement a hair below 0


@dataclass(frozen=True)
class CaseUncertainty:
    case: str
    mean_kl_foreground: float  # nan when neither decoder labels any voxel foreground
    mean_kl_image: float
    foreground_voxels: int


def summarise_case(case: str, kl: np.ndarray, main_labels: np.ndarray, aux_labels: np.ndarray) -> CaseUncertainty:
    """Mean KL over the voxels that either decoder labels foreground (label > 0), and over the whole image."""
    foreground = (main_labels > 0) | (aux_labels > 0)
    n = int(foreground.sum())
    return CaseUncertainty(case, float(kl[foreground].mean()) if n else math.nan, float(kl.mean()), n)


def rank_by_uncertainty(cases: Sequence[CaseUncertainty]) -> List[CaseUncertainty]:
    """Most uncertain first by the foreground mean; cases without any foreground come last (nothing to judge)."""
    return sorted(cases, key=lambda c: (math.isnan(c.mean_kl_foreground),
                                        -c.mean_kl_foreground if not math.isnan(c.mean_kl_foreground) else 0.0,
                                        c.case))


def write_uncertainty_ranking(path: str, cases: Sequence[CaseUncertainty]) -> None:
    write_tsv(path, UNCERTAINTY_RANKING_COLUMNS,
              ([rank, c.case, f"{c.mean_kl_foreground:.6g}", f"{c.mean_kl_image:.6g}", c.foreground_voxels]
               for rank, c in enumerate(rank_by_uncertainty(cases), start=1)), lineterminator="\n")


def read_uncertainty_ranking(path: str) -> List[CaseUncertainty]:
    """The cases of an uncertainty_ranking.tsv, in its order (most uncertain first)."""
    rows = read_tsv(path, UNCERTAINTY_RANKING_COLUMNS, "an uncertainty ranking",
                    "write it with `nnunetv2_dualunc predict-uncertainty`")
    return [CaseUncertainty(row["case"], float(row["mean_kl_foreground"]), float(row["mean_kl_image"]),
                            int(row["foreground_voxels"])) for row in rows]


def most_uncertain_section(case: str, image: np.ndarray, segmentation: np.ndarray, kl: np.ndarray,
                           reference: Optional[np.ndarray] = None) -> CaseSection:
    """The 2D section of a case to look at: a 2D image as it is; in 3D the slice along the first axis where the KL
    summed over the segmented foreground is largest (over the whole slice if nothing is segmented). image:
    (channels, *spatial), the first channel is shown; the others: spatial, as nnU-Net's reader and export give them."""
    foreground = segmentation > 0
    weights = kl * foreground if foreground.any() else kl
    index = int(np.argmax(weights.reshape(weights.shape[0], -1).sum(axis=1)))
    return CaseSection(case, image[0][index], segmentation[index], kl[index],
                       None if reference is None else reference[index])


def write_float_map(values: np.ndarray, path: str, properties: dict) -> None:
    """A float map in the geometry nnU-Net read the image with. SimpleITK-read datasets (NIfTI, NRRD, MHA...) keep
    spacing, origin and direction; for other readers only the spacing is known, so only the spacing is written."""
    geometry = properties.get("sitk_stuff")
    if geometry is not None:
        image = sitk.GetImageFromArray(values[0] if len(geometry["spacing"]) == 2 else values)
        image.SetSpacing(geometry["spacing"])
        image.SetOrigin(geometry["origin"])
        image.SetDirection(geometry["direction"])
        if "original_orientation" in geometry:  # SimpleITKIOWithReorient read it reoriented to RAS
            image = sitk.DICOMOrient(image, geometry["original_orientation"])
    else:
        image = sitk.GetImageFromArray(values)
        image.SetSpacing(tuple(float(s) for s in reversed(properties["spacing"])))
    sitk.WriteImage(image, path, True)


class UncertaintyPredictor:
    """A trained DualUnc model folder, predicted with both decoders through nnU-Net's predictor."""

    def __init__(self, model_folder: str, folds: Optional[Sequence[Fold]] = None,
                 checkpoint_name: str = "checkpoint_final.pth", device: torch.device = torch.device("cuda"),
                 use_mirroring: bool = True):
        self.predictor = sliding_window_predictor(device, use_mirroring)
        self.predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name)
        network = self.predictor.network
        self.network = network._orig_mod if isinstance(network, OptimizedModule) else network
        if not isinstance(self.network, DualDecoderUNet):
            raise ValueError(
                f"{model_folder} holds a {self.predictor.trainer_name} model, whose network "
                f"({type(self.network).__name__}) has no auxiliary decoder, so it has no uncertainty map. Use a model "
                f"trained with -tr nnUNetTrainerDualUnc (or one of its variants); a folder written by "
                f"`nnunetv2_dualunc export` has lost that decoder on purpose.")
        if self.predictor.configuration_manager.previous_stage_name is not None:
            raise ValueError(f"{model_folder}: cascade configurations (previous stage "
                             f"{self.predictor.configuration_manager.previous_stage_name}) are not supported")
        self.preprocessor = self.predictor.configuration_manager.preprocessor_class(verbose=False)

    @property
    def file_ending(self) -> str:
        return self.predictor.dataset_json["file_ending"]

    def predict_case(self, image: np.ndarray, properties: dict) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segmentation, KL map, auxiliary decoder's labels), all in the image's original geometry. image and
        properties as the dataset's reader returns them (the caller keeps the image: one read per case); properties
        gains what nnU-Net's preprocessing records in it, which the export reads back."""
        p = self.predictor
        data, _, _ = self.preprocessor.run_case_npy(image, None, properties, p.plans_manager,
                                                    p.configuration_manager, p.dataset_json)
        data = torch.from_numpy(data)
        results = {}
        try:
            for head in ("main", "auxiliary"):
                self.network.inference_output = head
                logits = p.predict_logits_from_preprocessed_data(data)
                results[head] = convert_predicted_logits_to_segmentation_with_correct_shape(
                    logits, p.plans_manager, p.configuration_manager, p.label_manager, properties,
                    return_probabilities=True)
        finally:
            self.network.inference_output = "main"
        (segmentation, p_main), (aux_labels, p_aux) = results["main"], results["auxiliary"]
        return segmentation, kl_between_probabilities(p_main, p_aux), aux_labels


def predict_uncertainty_folder(model_folder: str, input_folder: str, output_folder: str,
                               folds: Optional[Sequence[Fold]] = None, checkpoint_name: str = "checkpoint_final.pth",
                               device: torch.device = torch.device("cuda"),
                               use_mirroring: bool = True,
                               reference_folder: Optional[str] = None) -> List[CaseUncertainty]:
    """Segmentations, KL maps, the uncertainty ranking and its overview picture of every image in input_folder
    (nnU-Net's naming: CASE_0000<file ending>, one file per channel). reference_folder: segmentations named
    CASE<file ending>, shown beside the predictions in the overview. The input folders are only read."""
    if not os.path.isdir(input_folder):
        raise FileNotFoundError(f"input folder {input_folder} does not exist")
    if reference_folder is not None and not os.path.isdir(reference_folder):
        raise FileNotFoundError(f"reference folder {reference_folder} does not exist")
    if os.path.abspath(input_folder) == os.path.abspath(output_folder):
        raise ValueError(f"output folder {output_folder} is the input folder: choose another one (input images "
                         f"are never overwritten)")
    model = UncertaintyPredictor(model_folder, folds, checkpoint_name, device, use_mirroring)
    n_channels = len(model.predictor.dataset_json.get("channel_names", model.predictor.dataset_json.get("modality")))
    cases = create_lists_from_splitted_dataset_folder(input_folder, model.file_ending, num_processes=1)
    if not cases:
        raise FileNotFoundError(f"{input_folder} holds no image named CASE_0000{model.file_ending} (nnU-Net's "
                                f"naming, the model's file ending)")
    for files in cases:
        if len(files) != n_channels:
            raise ValueError(f"{files[0]}: found {len(files)} channel file(s) for this case, the model expects "
                             f"{n_channels} (CASE_0000{model.file_ending} ... CASE_{n_channels - 1:04d}"
                             f"{model.file_ending})")
    os.makedirs(output_folder, exist_ok=True)
    writer = model.predictor.plans_manager.image_reader_writer_class()
    summaries, sections = [], {}
    for files in cases:
        case = os.path.basename(files[0])[: -len("_0000" + model.file_ending)]
        image, properties = writer.read_images(files)
        segmentation, kl, aux_labels = model.predict_case(image, properties)
        writer.write_seg(segmentation, os.path.join(output_folder, case + model.file_ending), properties)
        write_float_map(kl, os.path.join(output_folder, case + UNCERTAINTY_MAP_SUFFIX), properties)
        summaries.append(summarise_case(case, kl, segmentation, aux_labels))
        sections[case] = most_uncertain_section(case, image, segmentation, kl,
                                                _reference(writer, reference_folder, case, model.file_ending))
        print(f"{case}: mean KL {summaries[-1].mean_kl_foreground:.4g} over {summaries[-1].foreground_voxels} "
              f"foreground voxels", flush=True)
    write_uncertainty_ranking(os.path.join(output_folder, UNCERTAINTY_RANKING_FILE), summaries)
    shown = rank_by_uncertainty(summaries)[:OVERVIEW_CASES]
    plot_uncertainty_overview([replace(sections[c.case], title=f"#{rank} {c.case}\nmean KL {c.mean_kl_foreground:.3g}")
                               for rank, c in enumerate(shown, start=1)],
                              os.path.join(output_folder, UNCERTAINTY_OVERVIEW_FILE))
    return summaries


def _reference(reader, folder: Optional[str], case: str, file_ending: str) -> Optional[np.ndarray]:
    """The case's reference segmentation (spatial), None without a reference folder or file for it."""
    if folder is None or not os.path.isfile(path := os.path.join(folder, case + file_ending)):
        return None
    return reader.read_seg(path)[0][0]
