"""Bidirectional copy-paste between a labelled and a pseudo-labelled batch (after Bai et al., CVPR 2023, "BCP"):
not the paper's, an option of the pseudo-labelled batch (training/dualunc_plus.py).

Why: after a warm start DualUnc gains from seeing more images with labels about as good as the model
(docs/log/2026-12-03_three-seeds-and-half-oracle.md, docs/log/2026-12-04_bidirectional-copy-paste.md), and its
pseudo-labels are mostly confidently wrong in whole structures. Mixing a box of a labelled image (with its true label)
into a pseudo-labelled image, and a box of a pseudo-labelled image into a labelled one, gives every pseudo-labelled
sample a region of true labels and new context around the pseudo-labelled region, which dilutes those structural
mistakes.

Pure tensor functions: no nnU-Net imports. Targets are nnU-Net's deep-supervision list (full resolution first,
each (B, 1, *spatial)); the box is drawn on the coarsest target's grid so that it covers exactly the same region
at every scale.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def random_box(full_shape: Sequence[int], coarsest_shape: Sequence[int], side_fraction: float,
               generator: Optional[torch.Generator] = None) -> Tuple[Tuple[int, int], ...]:
    """(start, stop) per spatial axis in full-resolution voxels, each side ~side_fraction of the patch, placed at
    random, with start and stop on the coarsest grid (multiples of full // coarsest)."""
    box = []
    for full, coarse in zip(full_shape, coarsest_shape):
        if full % coarse:
            raise ValueError(f"deep-supervision target of {coarse} voxels does not divide the patch's {full}")
        step = full // coarse
        side = min(coarse, max(1, round(side_fraction * coarse)))
        start = int(torch.randint(0, coarse - side + 1, (1,), generator=generator))
        box.append((start * step, (start + side) * step))
    return tuple(box)


def _box_slices(box: Sequence[Tuple[int, int]], full_shape: Sequence[int], shape: Sequence[int]) -> tuple:
    """The box's region on a grid of the given shape (a downsampled deep-supervision target)."""
    return tuple(slice(start * size // full, stop * size // full)
                 for (start, stop), full, size in zip(box, full_shape, shape))


def copy_paste(labelled_data: Tensor, labelled_targets: List[Tensor], unlabelled_data: Tensor,
               pseudo_targets: List[Tensor], side_fraction: float,
               generator: Optional[torch.Generator] = None) -> Tuple[Tensor, List[Tensor]]:
    """The pseudo-labelled batch, mixed with the labelled one: sample i (paired with labelled sample
    i % labelled batch size) gets a random box of its labelled partner pasted in when i is even, and is pasted as a
    box into its labelled partner when i is odd; targets are mixed the same way at every scale. The labelled
    batch itself is left as it is (the supervised loss keeps seeing clean labelled samples)."""
    full_shape = unlabelled_data.shape[2:]
    labelled = [labelled_data, *labelled_targets]  # the image is one more grid, at full resolution
    pseudo = [unlabelled_data, *pseudo_targets]
    mixed = [torch.empty_like(t) for t in pseudo]
    n_labelled = labelled_data.shape[0]
    for i in range(unlabelled_data.shape[0]):
        j = i % n_labelled
        box = random_box(full_shape, pseudo_targets[-1].shape[2:], side_fraction, generator)
        (outer, o), (inner, k) = ((pseudo, i), (labelled, j)) if i % 2 == 0 else ((labelled, j), (pseudo, i))
        for out, around, pasted in zip(mixed, outer, inner):
            region = (slice(None),) + _box_slices(box, full_shape, out.shape[2:])
            out[i] = around[o]
            out[i][region] = pasted[k][region]
    return mixed[0], mixed[1:]
