"""The paper's pixel-level uncertainty (Eq. 2) and rectified pseudo-label loss (Eq. 4).

Pure tensor functions: no nnU-Net trainer imports, so they can be checked against hand-computed values.
Logits are promoted to float32 because KL and exp(-KL) are numerically fragile in fp16 under autocast.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def kl_divergence_map(main_logits: Tensor, aux_logits: Tensor) -> Tensor:
    """Eq. 2: voxel-wise KL(p_main || p_aux) over the class axis (dim 1); returns shape (B, 1, *spatial)."""
    log_p_main = F.log_softmax(main_logits.float(), dim=1)
    log_p_aux = F.log_softmax(aux_logits.float(), dim=1)
    return (log_p_main.exp() * (log_p_main - log_p_aux)).sum(dim=1, keepdim=True)


def _as_index_target(pseudo_label: Tensor) -> Tensor:
    """nnU-Net targets are (B, 1, *spatial) floats; cross entropy wants (B, *spatial) longs."""
    if pseudo_label.ndim >= 2 and pseudo_label.shape[1] == 1:
        pseudo_label = pseudo_label[:, 0]
    return pseudo_label.long()


def _index_target_and_mask(pseudo_label: Tensor, ignore_index: Optional[int]) -> tuple[Tensor, Optional[Tensor]]:
    """The target as class indices, plus a float mask of the voxels that count (None: all of them)."""
    target = _as_index_target(pseudo_label)
    if ignore_index is None:
        return target, None
    ignored = target == ignore_index
    return target.masked_fill(ignored, 0), (~ignored).float()


def _masked_mean(values: Tensor, valid: Optional[Tensor]) -> Tensor:
    if valid is None:
        return values.mean()
    return (values * valid).sum() / valid.sum().clamp_min(1)


def rectified_pseudo_label_loss(main_logits: Tensor, aux_logits: Tensor, pseudo_label: Tensor,
                                ignore_index: Optional[int] = None, detach_weight: bool = False,
                                dice: Optional[nn.Module] = None) -> Tensor:
    """Eq. 4: mean over voxels of exp(-KL) * CE(main, pseudo-label) + KL.

    Voxels where the two decoders disagree get a small weight on their (probably wrong) pseudo-label, while the
    +KL term keeps the network from buying a low loss with disagreement. Gradients flow through both terms, as
    the equation is written. Voxels equal to ``ignore_index`` are excluded from both terms.

    detach_weight (not the paper's; the paper is silent on it): exp(-KL) as a fixed weight. With the gradient, the
    loss of a voxel whose CE exceeds 1 falls when the decoders disagree more (d/dKL of exp(-KL) CE + KL is
    1 - exp(-KL) CE), i.e. it rewards disagreement exactly where the main decoder contradicts the pseudo-label.

    dice (not the paper's): a soft Dice module called as nnU-Net's are, dice(logits, target, loss_mask); its loss is
    added with every voxel weighted by exp(-KL) (as a fixed weight). Cross entropy alone is dominated by the
    background voxels of a pseudo-label; the labelled loss (Eq. 5) has a Dice term for the same reason.
    """
    target, valid = _index_target_and_mask(pseudo_label, ignore_index)
    kl = kl_divergence_map(main_logits, aux_logits)[:, 0]
    ce = F.cross_entropy(main_logits.float(), target, reduction="none")
    weight = torch.exp(-kl.detach()) if detach_weight else torch.exp(-kl)
    loss = _masked_mean(weight * ce + kl, valid)
    if dice is not None:
        voxel_weight = torch.exp(-kl.detach()) if valid is None else torch.exp(-kl.detach()) * valid
        loss = loss + dice(main_logits.float(), target[:, None], loss_mask=voxel_weight[:, None])
    return loss


def pseudo_label_cross_entropy(main_logits: Tensor, pseudo_label: Tensor,
                               ignore_index: Optional[int] = None) -> Tensor:
    """Eq. 3 averaged over voxels: the plain self-training loss that the ablations use."""
    target, valid = _index_target_and_mask(pseudo_label, ignore_index)
    ce = F.cross_entropy(main_logits.float(), target, reduction="none")
    return _masked_mean(ce, valid)


class RectifiedPseudoLabelLoss(nn.Module):
    """Eq. 4 as a module, so nnU-Net's DeepSupervisionWrapper can apply it per output scale."""

    def __init__(self, ignore_index: Optional[int] = None, detach_weight: bool = False,
                 dice: Optional[nn.Module] = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.detach_weight = detach_weight
        self.dice = dice

    def forward(self, main_logits: Tensor, aux_logits: Tensor, pseudo_label: Tensor) -> Tensor:
        return rectified_pseudo_label_loss(main_logits, aux_logits, pseudo_label, self.ignore_index,
                                           self.detach_weight, self.dice)


class PseudoLabelCrossEntropyLoss(nn.Module):
    """Eq. 3 as a module (plain self-training)."""

    def __init__(self, ignore_index: Optional[int] = None):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, main_logits: Tensor, pseudo_label: Tensor) -> Tensor:
        return pseudo_label_cross_entropy(main_logits, pseudo_label, self.ignore_index)
