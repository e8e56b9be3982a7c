"""One preprocessed case on disk, in nnU-Net's Blosc2 format (CASE.b2nd, CASE_seg.b2nd, CASE.pkl), written so that a
killed writer never leaves a case that looks complete."""
import os
import shutil
import tempfile
from typing import Sequence

import numpy as np
from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2

# the files of one case, in the order writers move them into place: the .pkl last marks a case complete
CASE_FILE_SUFFIXES = (".b2nd", "_seg.b2nd", ".pkl")


def write_case_atomically(folder: str, identifier: str, data: np.ndarray, seg: np.ndarray, properties: dict,
                          patch_size: Sequence[int], scratch_prefix: str) -> None:
    """nnU-Net's save_case (with its chunking for patch_size) into a hidden scratch folder inside folder, then each
    file moved into folder, the .pkl last. Readers that list complete cases by their .pkl never see half a case;
    a killed run leaves only a scratch folder named scratch_prefix..., which its owner removes."""
    blocks, chunks = comp_blosc2_params(data.shape, tuple(patch_size), data.itemsize)
    blocks_seg, chunks_seg = comp_blosc2_params(seg.shape, tuple(patch_size), seg.itemsize)
    scratch = tempfile.mkdtemp(prefix=scratch_prefix, dir=folder)
    try:
        nnUNetDatasetBlosc2.save_case(data, seg, properties, os.path.join(scratch, identifier), chunks=chunks,
                                      blocks=blocks, chunks_seg=chunks_seg, blocks_seg=blocks_seg)
        for suffix in CASE_FILE_SUFFIXES:
            os.replace(os.path.join(scratch, identifier + suffix), os.path.join(folder, identifier + suffix))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
