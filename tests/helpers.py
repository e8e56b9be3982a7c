"""Small helpers shared by several test modules."""
import hashlib
import os


def folder_checksums(folder: str) -> dict:
    """relative path -> sha256 of every file below folder: proves a folder was left untouched."""
    result = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return result
