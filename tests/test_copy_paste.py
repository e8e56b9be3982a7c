"""Bidirectional copy-paste (method/copy_paste.py): which voxels come from which batch, at every scale."""
import pytest
import torch

from nnunetv2_dualunc.method.copy_paste import copy_paste, random_box
from nnunetv2_dualunc.method.schedule import StageSchedule
from nnunetv2_dualunc.training.dualunc_plus import nnUNetTrainerDualUncPlus
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart

# copy-paste without the pseudo-label Dice (a research variant, benchmarks/ext_trainers/research_trainers.py)
nnUNetTrainerDualUncWarmStartCopyPaste = type("WarmStartCopyPaste", (nnUNetTrainerDualUncWarmStart,),
                                              {"copy_paste_fraction": 2 / 3})


def _batches(n_labelled: int, n_unlabelled: int, shape, scales):
    """Labelled images are 1 with label 1, unlabelled ones 0 with pseudo-label 2, so every voxel tells its source."""
    def targets(n, value):
        return [torch.full((n, 1, *(s // f for s in shape)), float(value)) for f in scales]
    return (torch.ones(n_labelled, 1, *shape), targets(n_labelled, 1),
            torch.zeros(n_unlabelled, 1, *shape), targets(n_unlabelled, 2))


@pytest.mark.parametrize("shape, scales", [((16, 16), (1, 2, 4)), ((8, 16, 16), (1, 2))])
def test_every_scale_takes_its_label_from_the_same_region_as_the_image(shape, scales):
    data_l, targets_l, data_u, targets_u = _batches(4, 4, shape, scales)
    mixed, mixed_targets = copy_paste(data_l, targets_l, data_u, targets_u, 2 / 3, torch.Generator().manual_seed(0))
    assert mixed.shape == data_u.shape and [t.shape for t in mixed_targets] == [t.shape for t in targets_u]
    for i in range(4):
        from_labelled = mixed[i, 0] == 1
        assert 0 < from_labelled.float().mean() < 1  # a mix, not one of the two
        for factor, target in zip(scales, mixed_targets):
            grid = from_labelled[tuple(slice(None, None, factor) for _ in shape)]
            assert torch.equal(target[i, 0] == 1, grid)
            assert torch.equal(target[i, 0] == 2, ~grid)


def test_direction_alternates_and_inputs_stay_untouched():
    data_l, targets_l, data_u, targets_u = _batches(2, 4, (32, 32), (1, 2, 4, 8))
    originals = [t.clone() for t in (data_l, data_u, *targets_l, *targets_u)]
    mixed, _ = copy_paste(data_l, targets_l, data_u, targets_u, 2 / 3, torch.Generator().manual_seed(1))
    labelled_share = [(mixed[i] == 1).float().mean().item() for i in range(4)]
    box_share = (3 / 4) ** 2  # the coarsest grid is 4 x 4 here, a side of round(2/3 * 4) = 3 cells
    assert labelled_share == pytest.approx([box_share, 1 - box_share, box_share, 1 - box_share])
    for before, after in zip(originals, (data_l, data_u, *targets_l, *targets_u)):
        assert torch.equal(before, after)


def test_box_lies_on_the_coarsest_grid_and_inside_the_patch():
    generator = torch.Generator().manual_seed(2)
    for _ in range(50):
        box = random_box((128, 96), (8, 6), 2 / 3, generator)
        assert [stop - start for start, stop in box] == [5 * 16, 4 * 16]
        assert all(start % 16 == 0 and 0 <= start and stop <= full for (start, stop), full in zip(box, (128, 96)))


def test_target_that_does_not_divide_the_patch_is_refused():
    with pytest.raises(ValueError, match="does not divide"):
        random_box((30, 30), (4, 4), 0.5)


_UNMIXED_FINISH = type("CopyPasteUnmixedFinish", (nnUNetTrainerDualUncWarmStartCopyPaste,),
                       {"copy_paste_unmixed_finish": 0.2})


@pytest.mark.parametrize("trainer_class, epoch, mixes", [(nnUNetTrainerDualUncWarmStartCopyPaste, 424, True),
                                                         (nnUNetTrainerDualUncPlus, 424,
                                                          True),
                                                         (nnUNetTrainerDualUncWarmStart, 300, False),
                                                         (_UNMIXED_FINISH, 384, True),
                                                         (_UNMIXED_FINISH, 385, False),
                                                         (_UNMIXED_FINISH, 424, False)])
def test_train_step_mixes_the_pseudo_labelled_batch_only_in_the_copy_paste_trainers(trainer_class, epoch, mixes):
    """The trainer's step hands the network labelled samples as they are and, after them, the mixed pseudo-labelled
    ones, with the matching mixed targets to the pseudo-label loss (the step's numerics are stubbed out); with an
    unmixed finish of 0.2 the last 40 of the warm start's 200 stage-2 epochs (385-424 of 0-424) do not mix."""
    data_l, targets_l, data_u, targets_u = _batches(2, 2, (16, 16), (1, 2, 4))
    trainer = object.__new__(trainer_class)
    trainer.stage_schedule = StageSchedule(trainer_class.pretrain_epochs, trainer_class.stage1_epochs,
                                           trainer_class.stage2_epochs, num_snapshots=3)
    trainer.current_epoch = epoch
    trainer.device = torch.device("cpu")
    trainer.dataloader_unlabelled = iter([{"data": data_u, "target": targets_u}])
    trainer.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    seen = {}
    trainer.forward_heads = lambda data: seen.setdefault("data", [[data]])
    trainer._supervised_loss = lambda head, target: head[0].sum() * 0
    trainer.unsupervised_loss = lambda head, target: seen.setdefault("targets", target) and torch.zeros(())
    trainer.unlabelled_diagnostics = lambda heads: {}
    trainer._apply_gradients = lambda loss: None
    trainer.train_step({"data": data_l, "target": targets_l})
    data = seen["data"][0][0]
    assert torch.equal(data[:2], data_l)  # the labelled samples stay clean
    from_labelled = (data[2:] == 1).any().item()
    assert from_labelled == mixes
    assert all(((t == 1).any().item() == mixes) for t in seen["targets"])
