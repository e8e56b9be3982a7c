"""The online EMA teacher (method/online_teacher.py, training/online_teacher.py): its update rule against
hand-computed values, the targets it hands the second batch, and its state in a checkpoint (a killed run resuming
with the same teacher: tests/test_baselines.py, Mean Teacher, whose EMA teacher is the same mixin's)."""
import pytest
import torch
from torch import nn

from nnunetv2_dualunc.method.online_teacher import ema_update, hard_targets
from nnunetv2_dualunc.training.dualunc_plus import nnUNetTrainerDualUncPlus
from nnunetv2_dualunc.training.online_teacher import TEACHER_CHECKPOINT_KEY, OnlineTeacherMixin


class _SharedEncoder(nn.Module):
    """Like nnU-Net's U-Net, whose decoder holds a second reference to the encoder."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(1, 1, bias=False)
        self.decoder = nn.Sequential(self.encoder)


def _filled(module: nn.Module, value: float) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)
    return module


def test_ema_update_averages_each_shared_parameter_once():
    teacher, student = _filled(_SharedEncoder(), 1.0), _filled(_SharedEncoder(), 0.0)
    ema_update(teacher, student, 0.9)
    assert teacher.encoder.weight.item() == pytest.approx(0.9)  # once: 0.9, not 0.81
    ema_update(teacher, _filled(student, 2.0), 0.9)
    assert teacher.encoder.weight.item() == pytest.approx(0.9 * 0.9 + 0.1 * 2.0)
    assert student.encoder.weight.item() == 2.0  # the student is only read
    with pytest.raises(ValueError, match="outside"):
        ema_update(teacher, student, 1.5)


def test_hard_targets_are_the_argmax_class_shaped_like_nnunets_targets():
    logits = torch.zeros(2, 3, 4, 4)
    logits[0, 2] = 1.0
    logits[1, 1, :2] = 1.0
    (target,) = hard_targets([logits])
    assert target.shape == (2, 1, 4, 4) and target.dtype == torch.float32
    assert (target[0] == 2).all() and (target[1, 0, :2] == 1).all() and (target[1, 0, 2:] == 0).all()


class _TwoScaleNet(nn.Module):
    """Deep-supervision logits at full and half resolution, as nnU-Net's networks return them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 1)

    def forward(self, x):
        logits = self.conv(x)
        return [logits, logits[..., ::2, ::2]]


def _bare_trainer(network: nn.Module, second_batch_is_labelled: bool = False):
    trainer_class = type("OnlineTeacherTrainer", (OnlineTeacherMixin, nnUNetTrainerDualUncPlus),
                         {})
    trainer = object.__new__(trainer_class)
    trainer.device, trainer.current_epoch = torch.device("cpu"), 3
    trainer.second_batch_is_labelled = second_batch_is_labelled
    trainer._network_module = lambda: network
    trainer.print_to_log_file = lambda *args: None
    return trainer


def test_second_batch_trains_with_the_teachers_argmax_and_the_teacher_survives_a_checkpoint():
    torch.manual_seed(0)
    network = _TwoScaleNet()
    data = torch.randn(2, 1, 8, 8)
    stored = [torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 4, 4)]
    trainer = _bare_trainer(network)
    targets = trainer.second_batch_targets(data, stored)
    expected = hard_targets(network(data))
    assert all(torch.equal(t, e) for t, e in zip(targets, expected)) and not torch.equal(targets[0], stored[0])
    # the twin (labelled second batch) keeps its true labels
    assert _bare_trainer(network, second_batch_is_labelled=True).second_batch_targets(data, stored) is stored

    state = trainer.extra_checkpoint_state()
    _filled(network, 0.0)  # the network moves on; a resumed trainer must get the teacher back, not a copy of it
    resumed = _bare_trainer(network)
    resumed.restore_extra_checkpoint_state({"network_weights": {}, **state})
    restored = resumed._online_teacher.state_dict()
    assert all(torch.equal(restored[k], v) for k, v in state[TEACHER_CHECKPOINT_KEY].items())
    assert not torch.equal(restored["conv.weight"], network.conv.weight)
