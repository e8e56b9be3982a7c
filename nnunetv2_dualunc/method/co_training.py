"""Update rules of deep co-training (Qiao et al., ECCV 2018; for segmentation DCT-Seg, Peng et al., Pattern
Recognition 2020): two networks agree on unlabelled images (a Jensen-Shannon term) while each is asked to predict the
other's clean output on the other's adversarial examples (the view-difference term), so that agreeing does not make
them one network.

Pure tensor functions, checked against hand-computed values in tests/test_co_training.py. Conventions as in
method/consistency.py: logits and probabilities (B, C, *spatial), label maps (B, 1, *spatial) floats, float32 maths.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnunetv2_dualunc.method.consistency import entropy
from nnunetv2_dualunc.method.losses import kl_divergence_map


def jensen_shannon(probabilities: Sequence[Tensor]) -> Tensor:
    """Voxel-wise Jensen-Shannon divergence of several predictions: H(mean_k p_k) - mean_k H(p_k), natural log,
    shaped (B, 1, *spatial). 0 where all agree; log(K) at most. Gradients reach every prediction."""
    if len(probabilities) < 2:
        raise ValueError(f"the Jensen-Shannon divergence needs at least two predictions, got {len(probabilities)}")
    stacked = torch.stack([p.float() for p in probabilities])
    return entropy(stacked.mean(0)) - torch.stack([entropy(p) for p in stacked]).mean(0)


def fgsm_example(network: nn.Module, images: Tensor, labels: Optional[Tensor], epsilon: float,
                 ignore_label: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    """The fast-gradient-sign adversarial example images + epsilon * sign(d CE(network(images), labels) / d images)
    (Goodfellow et al. 2015) and the network's logits on the clean images, both detached. labels (B, 1, *spatial);
    None: the network's own argmax on the images (DCT's attack of an unlabelled batch). Only the input's gradient is
    computed: no parameter's .grad changes. With deep supervision the full-resolution output (the first) counts."""
    attacked = images.detach().float().requires_grad_(True)
    with torch.enable_grad():
        logits = network(attacked)
        logits = (logits[0] if isinstance(logits, (list, tuple)) else logits).float()
        target = logits.detach().argmax(1) if labels is None else labels[:, 0].long()
        loss = F.cross_entropy(logits, target, ignore_index=-100 if ignore_label is None else ignore_label)
        gradient, = torch.autograd.grad(loss, attacked)
    return (attacked + epsilon * gradient.sign()).detach().to(images.dtype), logits.detach()


def adversarial_kl(adversarial_logits: Tensor, clean_logits: Tensor) -> Tensor:
    """Mean over voxels of KL(p_clean || p_adversarial): the view-difference loss of the network that predicts on the
    adversarial example; the clean prediction (the other network's) is a fixed target."""
    return kl_divergence_map(clean_logits.detach(), adversarial_logits).mean()
