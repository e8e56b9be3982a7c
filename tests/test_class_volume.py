"""The class-share check behind `pseudo_label_dice_if_share_below` (a research option), and the trainers' use of it."""
import numpy as np
import pytest

from nnunetv2_dualunc.data.pseudo_labels import reset_folder, write_pseudo_labelled_case
from nnunetv2_dualunc.method.class_volume import class_shares, share_ratios, undersegmented
from nnunetv2_dualunc.method.schedule import Phase
from nnunetv2_dualunc.run_layout import pseudo_label_folder
from nnunetv2_dualunc.training.dualunc_plus import nnUNetTrainerDualUncPlus
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining
from helpers import trainer_factory


def test_class_shares_pool_the_annotated_voxels_of_all_segmentations():
    a = np.array([[0, 1, 1, -1]])  # -1: outside nnU-Net's crop mask, not counted
    b = np.array([[2, 0, 0, 0]])
    assert class_shares([a, b], [1, 2]) == pytest.approx([2 / 7, 1 / 7])
    with_ignore = np.array([[0, 1, 1, 9, 9]])  # 9: the ignore label, not annotated
    assert class_shares([with_ignore], [1], ignore_label=9) == pytest.approx([2 / 3])
    with pytest.raises(ValueError, match="no annotated voxel"):
        class_shares([np.full((2, 2), -1)], [1])


def test_share_ratios_and_the_undersegmented_classes():
    ratios = share_ratios(np.array([0.05, 0.2, 0.1]), np.array([0.1, 0.2, 0.0]), [1, 2, 3])
    assert ratios == pytest.approx({1: 0.5, 2: 1.0})  # label 3 has no labelled voxel: no reference, left out
    assert undersegmented(ratios, 0.85) == {1: pytest.approx(0.5)}
    assert undersegmented(ratios, 0.4) == {}


@pytest.mark.parametrize("remove_class_1, kept", [(False, False), (True, True)])
def test_the_dice_term_is_kept_only_where_the_first_pseudo_labels_undersegment_a_class(
        planned_workspace, monkeypatch, tmp_path, remove_class_1, kept):
    """Pseudo-labels equal to the labelled training cases switch the Dice term off in both stages; the same with
    class 1 erased (share ratio 0 < 0.85) keep it; the unguarded trainer always keeps it."""
    make_trainer = trainer_factory(planned_workspace, monkeypatch, fold="all")
    # only the guard's part of entering a phase: ranking and pseudo-labelling are replaced by the files below
    monkeypatch.setattr(nnUNetTrainerSelfTraining, "_enter_phase", lambda self, phase: None)
    trainer = make_trainer(type("IfUndersegmented", (nnUNetTrainerDualUncPlus,), {"pseudo_label_dice_if_share_below": 0.85}))
    trainer._build_loss()
    trainer.output_folder = str(tmp_path)
    keys, _ = trainer.do_split()
    labelled = trainer.dataset_class(trainer.preprocessed_dataset_folder, keys)
    folder = pseudo_label_folder(str(tmp_path), Phase.STAGE1.value)
    reset_folder(folder)
    for key in keys:
        data, seg, _, properties = labelled.load_case(key)
        label = np.array(seg[:])
        if remove_class_1:
            label[label == 1] = 0
        write_pseudo_labelled_case(folder, f"u_{key}", np.asarray(data[:]), label, properties,
                                   trainer.configuration_manager.patch_size, trainer.label_manager.foreground_labels)
    for phase in (Phase.STAGE1, Phase.STAGE2):
        trainer._enter_phase(phase)
        assert (trainer.unsupervised_loss.loss.dice is not None) is kept
    log = open(trainer.log_file).read()
    assert ("the Dice term on pseudo-labels is kept" in log) is kept
    assert "1: 0.00" in log if remove_class_1 else "1: 1.00" in log

    unguarded = make_trainer(nnUNetTrainerDualUncPlus)
    unguarded._build_loss()
    unguarded._enter_phase(Phase.STAGE1)
    assert unguarded.unsupervised_loss.loss.dice is not None
