"""The trainers a user chooses from: the catalogue, the `trainers` command, and the earlier names kept working."""
import importlib.util
import os

from nnunetv2_dualunc.cli import main
from nnunetv2_dualunc.nnunet_commands import trainer_folder
from nnunetv2_dualunc.training.catalogue import CATALOGUE, catalogued_trainers, default_budget
from nnunetv2_dualunc.training.dualunc_plus import (nnUNetTrainerDualUncCopyPastePseudoDice, nnUNetTrainerDualUncPlus,
                                                    nnUNetTrainerDualUncPlusFromScratch,
                                                    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice)


def test_trainers_command_lists_every_exported_trainer_once_recommended_first(capsys):
    main(["trainers"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Recommended" and lines[1].split()[0] == "nnUNetTrainerDualUncPlus"
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    spec = importlib.util.spec_from_file_location("thin", os.path.join(trainer_folder(), "dualunc_trainers.py"))
    thin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thin)
    assert listed == thin.__all__ == [t.__name__ for t in catalogued_trainers()]
    assert len(set(listed)) == len(listed)
    assert lines[1].endswith("[25 + 200 + 200 epochs]")


def test_research_variants_are_not_in_the_users_list():
    names = {t.__name__ for t in catalogued_trainers()}
    assert not {"nnUNetTrainerDualUncLightAux", "nnUNetTrainerDualUncWarmStartFgRank",
                "nnUNetTrainerDualUncWarmStartCopyPaste", "nnUNetTrainerDualUncWarmStartPseudoDice"} & names
    assert [heading for heading, _ in CATALOGUE][0] == "Recommended"


def test_earlier_names_train_the_same_recipe_into_their_own_folders():
    """An alias is a subclass without changes: nnU-Net names the output folder after the class, so models trained
    under the earlier name stay where they were and `-tr <earlier name>` finds them."""
    for alias, short in ((nnUNetTrainerDualUncWarmStartCopyPastePseudoDice, nnUNetTrainerDualUncPlus),
                         (nnUNetTrainerDualUncCopyPastePseudoDice, nnUNetTrainerDualUncPlusFromScratch)):
        assert alias.__bases__ == (short,) and set(vars(alias)) <= {"__module__", "__doc__", "__qualname__"}
        assert short.copy_paste_fraction == 2 / 3 and short.pseudo_label_dice
    assert default_budget(nnUNetTrainerDualUncPlusFromScratch) == "200 + 200 + 200 epochs"
