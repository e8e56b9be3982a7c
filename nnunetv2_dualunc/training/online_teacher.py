"""Pseudo-labels refreshed every step by an online EMA teacher (method/online_teacher.py): a mixin for any
semi-supervised trainer, not the paper's.

The stored pseudo-labels of a stage still choose which unlabelled cases are used (Eq. 1's reliable half in stage 1,
all in stage 2) and where nnU-Net's loader samples foreground patches; their voxels are replaced, in every step, by
the argmax of an exponential moving average of the network evaluated on the augmented unlabelled batch itself (the
main decoder, every deep-supervision scale). Copy-paste, Eq. 4 and the Dice term then act on those targets as on
stored ones.

Choices (the papers leave them open; their authors' code was not consulted for these):
- the teacher starts as a copy of the network at the first step with an unlabelled batch (after a warm start's
  adaptation phase: the teacher that labelled stage 1), and follows it with momentum ``teacher_momentum`` = 0.99
  (an average over about the last hundred steps) in every step after;
- hard labels (argmax), as the stored pseudo-labels are: Eq. 4's exp(-KL) already down-weights uncertain voxels;
- the teacher's weights are kept in nnU-Net's checkpoint, so ``--c`` resumes with the same teacher;
- while the second batch holds labelled cases (``second_batch_from_labelled``, the recipe-only twin) the teacher is
  never used: the labels are true ones.
"""
import copy
from typing import List, Optional

import torch
from torch import autocast, nn

from nnunetv2_dualunc.method.online_teacher import ema_update, hard_targets
from nnunetv2_dualunc.training.semi_supervised import _as_list

TEACHER_CHECKPOINT_KEY = "online_teacher_weights"
TEACHER_UPDATES_CHECKPOINT_KEY = "online_teacher_updates"


class EmaTeacherMixin:
    """An EMA teacher of the network, updated after every optimizer step once it exists and kept in the checkpoint;
    put before a semi-supervised trainer in the bases. What the teacher is used for is the subclass's."""

    teacher_momentum: float = 0.99
    # Mean Teacher's warm-up of the average (its authors' code): momentum min(1 - 1/(n + 1), teacher_momentum) at the
    # n-th update, so that early on the teacher averages all weights so far rather than holding on to the first ones
    teacher_momentum_warmup: bool = False
    _online_teacher: Optional[nn.Module] = None
    _teacher_updates: int = 0

    def _teacher_outputs(self, data: torch.Tensor) -> List[torch.Tensor]:
        """The teacher's logits on data, one tensor per deep-supervision scale, without gradients."""
        with torch.no_grad(), autocast(self.device.type, enabled=self.device.type == "cuda"):
            return _as_list(self._teacher()(data))

    def _apply_gradients(self, loss: torch.Tensor) -> None:
        super()._apply_gradients(loss)
        if self._online_teacher is not None:
            ema_update(self._online_teacher, self._network_module(), self.current_teacher_momentum())
            self._teacher_updates += 1

    def current_teacher_momentum(self) -> float:
        """The momentum of the next EMA update."""
        if self.teacher_momentum_warmup:
            return min(1.0 - 1.0 / (self._teacher_updates + 1), self.teacher_momentum)
        return self.teacher_momentum

    def extra_checkpoint_state(self) -> dict:
        state = super().extra_checkpoint_state()
        if self._online_teacher is not None:
            state[TEACHER_CHECKPOINT_KEY] = self._online_teacher.state_dict()
            state[TEACHER_UPDATES_CHECKPOINT_KEY] = self._teacher_updates
        return state

    def restore_extra_checkpoint_state(self, checkpoint: dict) -> None:
        super().restore_extra_checkpoint_state(checkpoint)
        if TEACHER_CHECKPOINT_KEY in checkpoint:
            self._online_teacher = copy.deepcopy(self._network_module()).requires_grad_(False)
            self._online_teacher.load_state_dict(checkpoint[TEACHER_CHECKPOINT_KEY])
            self._teacher_updates = int(checkpoint.get(TEACHER_UPDATES_CHECKPOINT_KEY, 0))
            self.print_to_log_file("online teacher restored from the checkpoint")

    def _teacher(self) -> nn.Module:
        """The EMA teacher, created from the network's current weights on first use."""
        if self._online_teacher is None:
            self._online_teacher = copy.deepcopy(self._network_module()).requires_grad_(False)
            self.print_to_log_file(f"online teacher: an EMA of the network from epoch {self.current_epoch} on, "
                                   f"momentum {self.teacher_momentum}")
        return self._online_teacher


class OnlineTeacherMixin(EmaTeacherMixin):
    """Hard pseudo-labels of the EMA teacher for the second batch; put before a semi-supervised trainer in the bases."""

    def second_batch_targets(self, data: torch.Tensor, targets: List[torch.Tensor]) -> List[torch.Tensor]:
        if self.second_batch_is_labelled:
            return super().second_batch_targets(data, targets)
        labels = hard_targets(self._teacher_outputs(data))
        if [t.shape for t in labels[:len(targets)]] != [t.shape for t in targets]:
            raise RuntimeError(f"the online teacher's outputs {[tuple(t.shape) for t in labels]} do not match the "
                               f"targets {[tuple(t.shape) for t in targets]}")
        return labels[:len(targets)]
