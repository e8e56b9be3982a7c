"""nnU-Net's folder variables (nnUNet_raw, nnUNet_preprocessed, nnUNet_results), checked in one place.

nnunetv2.paths only fails when an unset folder is first used, deep inside nnU-Net; the plugin's commands and
preprocessing check what they need first and name the variable and the fix.
"""
import os
from typing import List, Sequence, Type

NNUNET_FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def missing_folder_variables(names: Sequence[str]) -> List[str]:
    return [name for name in names if not os.environ.get(name)]


def how_to_set(names: Sequence[str]) -> str:
    """The fix for unset folder variables, one export line per variable."""
    return ("set them to the folders nnU-Net uses (see nnU-Net's documentation/setting_up_paths.md), e.g.\n" +
            "\n".join(f"    export {name}=/path/to/{name}" for name in names))


def nnunet_folder(name: str, error: Type[Exception] = ValueError) -> str:
    """The folder in $name; unset or empty raises error (the caller's error type) naming the variable and the fix."""
    value = os.environ.get(name)
    if not value:
        raise error(f"Environment variable {name} is not set. Fix: {how_to_set([name])}")
    return value
