"""Writes that a kill cannot leave half done: the old file or the new one, never a mix, and no leftovers."""
import json
import os

import pytest

from nnunetv2_dualunc.atomic_files import atomic_output, atomic_write_json, temporary_path, write_via_temporary


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "plans.json")
    atomic_write_json({"version": 1}, path)
    with pytest.raises(RuntimeError):
        with atomic_output(path) as f:
            f.write('{"version": 2')  # half written ...
            raise RuntimeError("killed")  # ... when the writer dies
    assert json.load(open(path)) == {"version": 1}
    assert os.listdir(tmp_path) == ["plans.json"]


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    path = str(tmp_path / "weights.pth")
    leftover = tmp_path / "weights.pth.tmp99999"  # another (dead) process' temporary file
    leftover.write_bytes(b"half")
    seen = []
    write_via_temporary(path, lambda tmp: open(tmp, "w").write("new"), before_replace=seen.append)
    assert open(path).read() == "new"
    assert seen == [temporary_path(path)]
    assert sorted(os.listdir(tmp_path)) == ["weights.pth"]


def test_a_writer_that_declines_to_write_changes_nothing(tmp_path):
    path = str(tmp_path / "checkpoint.pth")
    write_via_temporary(path, lambda tmp: None)  # e.g. nnU-Net on a rank other than 0
    assert os.listdir(tmp_path) == []
