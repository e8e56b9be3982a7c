"""The wheel that `pip install .` builds holds every module of the source tree.

The README's first command is a non-editable install; the tests run from an editable one, which finds modules in
the checkout whether setup.py lists their package or not. So a package missing from setup.py (it happened to
`nnunetv2_dualunc.inference`) passed every other test and broke the newcomer's demo.
"""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: source folder -> the name it is installed under
INSTALLED_AS = {"nnunetv2_dualunc": "nnunetv2_dualunc", "trainers": "nnunetv2_dualunc_trainers"}


def _source_modules() -> set:
    modules = set()
    for source, installed in INSTALLED_AS.items():
        for folder, subfolders, files in os.walk(os.path.join(REPO, source)):
            subfolders[:] = [name for name in subfolders if name != "__pycache__"]
            relative = os.path.relpath(folder, os.path.join(REPO, source))
            for name in files:
                if name.endswith(".py"):
                    modules.add(os.path.normpath(os.path.join(installed, relative, name)).replace(os.sep, "/"))
    return modules


def _clean_copy(destination: str) -> str:
    """What setup.py needs, without a build/ folder whose leftovers a build in the checkout would pick up."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), destination)
    for source in INSTALLED_AS:
        shutil.copytree(os.path.join(REPO, source), os.path.join(destination, source), ignore=ignore)
    return destination


def test_wheel_contains_every_source_module(tmp_path):
    (tmp_path / "source").mkdir()
    source, wheel_folder = _clean_copy(str(tmp_path / "source")), tmp_path / "wheel"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheel_folder), source], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stdout}\n{build.stderr}")
    wheels = [name for name in os.listdir(wheel_folder) if name.endswith(".whl")]
    assert len(wheels) == 1, wheels
    in_wheel = set(zipfile.ZipFile(os.path.join(wheel_folder, wheels[0])).namelist())
    expected = _source_modules()
    assert "nnunetv2_dualunc/inference/predictors.py" in expected  # the walk itself sees the subpackages
    missing = sorted(expected - in_wheel)
    assert not missing, f"setup.py does not install: {missing}"
