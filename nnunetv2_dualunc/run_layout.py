"""Every path and file name the plugin writes into a run folder, in one place.

A self-training fold folder (nnU-Net's ``nnUNet_results/<dataset>/<trainer>__<plans>__<configuration>/fold_<f>``)
holds, besides nnU-Net's own checkpoints and logs:

    snapshots/weights_after_epoch_<EEEE>.pth   network weights after E completed epochs (Eq. 1's snapshots, the
                                               teacher and the student that refreshes the pseudo-labels)
    unlabelled_ranking.tsv                     Eq. 1 score, rank and reliable/unreliable subset per unlabelled case
    unlabelled_ranking_settings.json           the snapshots, normalisation and reliable fraction it was made with
    unlabelled_ranking.png                     histogram of the Eq. 1 scores with the reliable / unreliable cut
    progress_semi_supervised.png               supervised / unsupervised loss, mean KL, pseudo-Dice, phases marked
    pseudo_labels/<phase>/                     preprocessed pseudo-labelled cases of a phase, with manifest.json

and the output folder of ``nnunetv2_dualunc predict-uncertainty`` holds, besides the segmentations:

    <case>_uncertainty.nii.gz                  KL(main || aux) per voxel
    uncertainty_ranking.tsv                    the cases, most uncertain first
    uncertainty_overview.png                   the most uncertain cases: image, segmentation, uncertainty (reference)

and the demo's output folder holds ranking_vs_dice.png: each test case's uncertainty against its Dice.

Readers (trainers, benchmarks, the demo) take the names from here, so a layout change is made once.
"""
import os
from typing import List

SNAPSHOT_FOLDER = "snapshots"
SAMPLE_RANKING_FILE = "unlabelled_ranking.tsv"
PSEUDO_LABEL_FOLDER = "pseudo_labels"
PSEUDO_LABEL_MANIFEST_FILE = "manifest.json"

SEMI_SUPERVISED_PROGRESS_FILE = "progress_semi_supervised.png"

UNCERTAINTY_MAP_SUFFIX = "_uncertainty.nii.gz"
UNCERTAINTY_RANKING_FILE = "uncertainty_ranking.tsv"
UNCERTAINTY_OVERVIEW_FILE = "uncertainty_overview.png"
RANKING_VS_DICE_FILE = "ranking_vs_dice.png"


def snapshot_path(fold_folder: str, completed_epochs: int) -> str:
    """The weights saved after completed_epochs epochs."""
    return os.path.join(fold_folder, SNAPSHOT_FOLDER, f"weights_after_epoch_{completed_epochs:04d}.pth")


def sample_ranking_path(fold_folder: str) -> str:
    return os.path.join(fold_folder, SAMPLE_RANKING_FILE)


def ranking_histogram_path(ranking_path: str) -> str:
    """The histogram picture that goes with a ranking table: same folder, same stem."""
    return os.path.splitext(ranking_path)[0] + ".png"


def ranking_settings_path(ranking_path: str) -> str:
    """The settings file that goes with a ranking table: same folder, same stem."""
    return os.path.splitext(ranking_path)[0] + "_settings.json"


def pseudo_label_folder(fold_folder: str, phase: str) -> str:
    """The preprocessed pseudo-labelled cases of one phase ('stage1', 'stage2')."""
    return os.path.join(fold_folder, PSEUDO_LABEL_FOLDER, phase)


def self_training_state(fold_folder: str) -> List[str]:
    """Everything a self-training run derives from its own weights: a fresh run in the same folder removes it."""
    ranking = sample_ranking_path(fold_folder)
    return [ranking, ranking_settings_path(ranking), ranking_histogram_path(ranking),
            os.path.join(fold_folder, SNAPSHOT_FOLDER),
            os.path.join(fold_folder, PSEUDO_LABEL_FOLDER)]
