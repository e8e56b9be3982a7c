"""Files written so that a reader (or a resumed run) sees the old version or the new one, never half of one.

Everything the plugin writes that a later step reads -- plans, splits, rankings, manifests, snapshots, checkpoints --
goes to a temporary file beside its destination (`<name>.tmp<pid>`) and is renamed over it when complete. A process
killed mid-write leaves only such a temporary file, which remove_stale_temporaries deletes on the next write.
"""
import json
import os
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterator, Optional


def temporary_path(path: str) -> str:
    """The temporary file a write of path goes to (per process, so that two writers never share one)."""
    return f"{path}.tmp{os.getpid()}"


def remove_stale_temporaries(path: str) -> None:
    """Delete the temporary files of path that a process killed while writing it left behind: they are never read,
    and a network's weights make each one large."""
    folder, name = os.path.split(path)
    for leftover in os.listdir(folder or "."):
        if leftover.startswith(f"{name}.tmp"):
            os.remove(os.path.join(folder, leftover))


def write_via_temporary(path: str, write: Callable[[str], None],
                        before_replace: Optional[Callable[[str], None]] = None) -> None:
    """write(temporary_file), then rename it over path. A writer may decline to write (nnU-Net saves checkpoints on
    rank 0 only): then nothing happens. before_replace(temporary_file) runs once the temporary file is complete."""
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    write(tmp)
    if not os.path.isfile(tmp):
        return
    if before_replace is not None:
        before_replace(tmp)
    os.replace(tmp, path)


@contextmanager
def atomic_output(path: str, newline: str = None) -> Iterator[IO[str]]:
    """A text file to write path's new content into; it replaces path only if the block finishes."""
    tmp = temporary_path(path)
    try:
        with open(tmp, "w", newline=newline) as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_torch_save(obj: Any, path: str, before_replace: Optional[Callable[[str], None]] = None) -> None:
    """torch.save through a temporary file (weights, checkpoints). before_replace(temporary_file) runs once the
    temporary file is complete."""
    import torch  # only the writers of weights need it

    write_via_temporary(path, lambda tmp: torch.save(obj, tmp), before_replace)


def atomic_write_json(obj: Any, path: str, indent: int = 2) -> None:
    with atomic_output(path) as f:
        json.dump(obj, f, indent=indent)
