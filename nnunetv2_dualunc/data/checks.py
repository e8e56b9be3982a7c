"""Cheap start-up checks of preprocessed cases (nnU-Net's Blosc2 format: CASE.b2nd, CASE_seg.b2nd, CASE.pkl).

A truncated or overwritten file otherwise surfaces deep inside a data-loader worker, mid-training, often as
"background workers are no longer alive" without a file name. Opening a Blosc2 file reads only its header and
chunk index (tens of microseconds), and the .pkl holds small metadata, so every case can be checked before
training starts. Damage inside a compressed chunk that leaves header and index intact is not detected: that
would need decompressing every case.
"""
import os
import pickle
from typing import Dict, List, Sequence

import blosc2

from nnunetv2_dualunc.data.case_files import CASE_FILE_SUFFIXES


class CorruptPreprocessedDataError(RuntimeError):
    """A preprocessed file that cannot be opened; the message names the file and the fix."""


def case_file_problems(folder: str, identifier: str) -> Dict[str, str]:
    """file path -> what is wrong with it, for each of the case's three files that is missing or does not open;
    also flags image and segmentation arrays whose spatial shapes differ. {} when the case looks usable."""
    problems: Dict[str, str] = {}
    shapes = {}
    for suffix in CASE_FILE_SUFFIXES:
        path = os.path.join(folder, identifier + suffix)
        if not os.path.isfile(path):
            problems[path] = "missing"
            continue
        try:
            if suffix == ".pkl":
                with open(path, "rb") as f:
                    if not isinstance(pickle.load(f), dict):
                        problems[path] = "does not hold nnU-Net's case properties (a dict)"
            else:
                shapes[suffix] = tuple(blosc2.open(urlpath=path, mode="r", mmap_mode="r").shape)
        except Exception as e:  # blosc2 raises RuntimeError, pickle anything from EOFError to UnpicklingError
            problems[path] = f"cannot be opened ({type(e).__name__}: {e})"
    if len(shapes) == 2 and shapes[".b2nd"][1:] != shapes["_seg.b2nd"][1:]:
        problems[os.path.join(folder, identifier + "_seg.b2nd")] = \
            f"has spatial shape {shapes['_seg.b2nd'][1:]} but the image has {shapes['.b2nd'][1:]}"
    return problems


def unreadable_cases(folder: str, identifiers: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """identifier -> case_file_problems(...) for every case with a problem."""
    found = {i: case_file_problems(folder, i) for i in identifiers}
    return {i: p for i, p in found.items() if p}


def describe_problems(problems: Dict[str, Dict[str, str]], limit: int = 20) -> List[str]:
    lines = [f"{path} {what}" for case in sorted(problems) for path, what in problems[case].items()]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def check_labelled_preprocessed_folder(folder: str, preprocess_command: str) -> None:
    """Raise CorruptPreprocessedDataError naming every unusable case file of nnU-Net's preprocessed training data.

    Only Blosc2 folders (nnU-Net >= 2.6) are checked; other formats are left to nnU-Net. These files belong to
    nnU-Net, so the fix is nnU-Net's preprocessing, not a repair here.
    """
    if not os.path.isdir(folder):
        return  # nnU-Net reports a missing folder itself
    names = [n for n in os.listdir(folder) if not n.startswith(".")]
    if not any(n.endswith(".b2nd") for n in names):
        return
    identifiers = sorted({n[:-len(".b2nd")] for n in names if n.endswith(".b2nd") and not n.endswith("_seg.b2nd")} |
                         {n[:-len(".pkl")] for n in names if n.endswith(".pkl")})
    problems = unreadable_cases(folder, identifiers)
    if problems:
        raise CorruptPreprocessedDataError(
            f"nnU-Net's preprocessed training data in {folder} is damaged ({len(problems)} case(s)):\n - "
            + "\n - ".join(describe_problems(problems))
            + f"\nFix: rerun `{preprocess_command}` (it rewrites this folder from the raw data), then start "
              f"training again.")
