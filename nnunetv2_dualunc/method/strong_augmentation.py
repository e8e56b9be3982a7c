"""Strong augmentation of a batch that is already augmented by nnU-Net ("weak"), for FixMatch-style consistency and
ST++: intensity changes that keep every voxel where it is, so the weak view's prediction stays a valid target, plus
CutMix between the batch's samples, whose targets are mixed with the same box.

The list follows the strong augmentations of ST++ and UniMatch (Yang et al. 2022, 2023) translated to medical
intensities: colour jitter becomes brightness and contrast of z-scored intensities, and gamma and Gaussian noise
stand in for saturation and hue, which a grey-value image does not have; blur and CutMix are theirs. Probabilities
and ranges are module constants, written down in the trainers' docstrings.

Pure tensor functions on (B, C, *spatial) batches; a torch.Generator makes a call reproducible.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from nnunetv2_dualunc.method.copy_paste import _box_slices, random_box

JITTER_PROBABILITY = 0.8
BRIGHTNESS_RANGE = (0.5, 1.5)  # multiplies the intensities
CONTRAST_RANGE = (0.5, 1.5)  # scales the deviation from the sample's mean
GAMMA_PROBABILITY, GAMMA_RANGE = 0.3, (0.7, 1.5)
NOISE_PROBABILITY, NOISE_STD = 0.3, 0.1  # relative to the sample's standard deviation
BLUR_PROBABILITY, BLUR_SIGMA = 0.5, (0.1, 2.0)  # sigma in voxels
CUTMIX_PROBABILITY, CUTMIX_SIDE = 0.5, 0.5  # box side relative to the patch


def _uniform(low: float, high: float, generator: Optional[torch.Generator]) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _happens(probability: float, generator: Optional[torch.Generator]) -> bool:
    return float(torch.rand((), generator=generator)) < probability


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of one sample (C, *spatial), every spatial axis, edges replicated."""
    radius = max(1, int(round(2 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    n_spatial = image.ndim - 1
    conv = F.conv2d if n_spatial == 2 else F.conv3d
    channels = image.shape[0]
    out = image[None]
    for axis in range(n_spatial):
        shape = [1] * n_spatial
        shape[axis] = kernel.numel()
        weight = kernel.reshape(1, 1, *shape).repeat(channels, 1, *([1] * n_spatial))
        padding = [0, 0] * n_spatial
        padding[2 * (n_spatial - 1 - axis)] = padding[2 * (n_spatial - 1 - axis) + 1] = radius
        out = conv(F.pad(out, padding, mode="replicate"), weight, groups=channels)
    return out[0]


def photometric(image: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """One sample (C, *spatial) with random brightness/contrast, gamma, noise and blur; voxel positions unchanged."""
    image = image.float().clone()
    if _happens(JITTER_PROBABILITY, generator):
        image = image * _uniform(*BRIGHTNESS_RANGE, generator)
        mean = image.mean()
        image = (image - mean) * _uniform(*CONTRAST_RANGE, generator) + mean
    if _happens(GAMMA_PROBABILITY, generator):
        low, high = image.min(), image.max()
        span = (high - low).clamp_min(1e-8)
        image = ((image - low) / span) ** _uniform(*GAMMA_RANGE, generator) * span + low
    if _happens(NOISE_PROBABILITY, generator):
        noise = torch.randn(image.shape, generator=generator, device="cpu").to(image.device)
        image = image + noise * NOISE_STD * image.std()
    if _happens(BLUR_PROBABILITY, generator):
        image = gaussian_blur(image, _uniform(*BLUR_SIGMA, generator))
    return image


def cutmix(data: Tensor, per_voxel: Sequence[List[Tensor]], side_fraction: float = CUTMIX_SIDE,
           probability: float = CUTMIX_PROBABILITY,
           generator: Optional[torch.Generator] = None) -> Tuple[Tensor, List[List[Tensor]]]:
    """CutMix inside one batch: sample i, with the given probability, gets a box of sample i + 1 (cyclically) pasted
    in. Every tensor list in per_voxel (targets, confidence masks: one tensor per deep-supervision scale, full
    resolution first) is mixed with the same box at its own resolution. Inputs are not modified."""
    mixed_data = data.clone()
    mixed = [[t.clone() for t in scales] for scales in per_voxel]
    n = data.shape[0]
    if n < 2:
        return mixed_data, mixed
    full_shape = data.shape[2:]
    coarsest = per_voxel[0][-1].shape[2:] if per_voxel else full_shape  # every list holds the same scales
    for i in range(n):
        if not _happens(probability, generator):
            continue
        j = (i + 1) % n
        box = random_box(full_shape, coarsest, side_fraction, generator)
        image_region = (slice(None),) + _box_slices(box, full_shape, full_shape)
        mixed_data[i][image_region] = data[j][image_region]
        for source, out in zip(per_voxel, mixed):
            for original, scale in zip(source, out):
                region = (slice(None),) + _box_slices(box, full_shape, scale.shape[2:])
                scale[i][region] = original[j][region]
    return mixed_data, mixed


def strong_view(data: Tensor, per_voxel: Sequence[List[Tensor]], generator: Optional[torch.Generator] = None
                ) -> Tuple[Tensor, List[List[Tensor]]]:
    """The strong view of a weakly augmented batch: photometric changes per sample, then CutMix; the per-voxel
    tensors (targets, masks) follow the CutMix."""
    jittered = torch.stack([photometric(sample, generator) for sample in data]).to(data.dtype)
    return cutmix(jittered, per_voxel, generator=generator)
