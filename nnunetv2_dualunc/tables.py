"""Tab-separated tables the plugin writes and reads back (the Eq. 1 ranking, the uncertainty ranking)."""
import csv
from typing import Iterable, List, Sequence

from nnunetv2_dualunc.atomic_files import atomic_output


def write_tsv(path: str, columns: Sequence[str], rows: Iterable[Sequence], lineterminator: str = "\r\n") -> None:
    """The header and rows, written atomically (a reader never sees half a table)."""
    with atomic_output(path, newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator=lineterminator)
        writer.writerow(columns)
        writer.writerows(rows)


def read_tsv(path: str, columns: Sequence[str], what: str, fix: str) -> List[dict]:
    """The rows of a table with exactly these columns; another header raises ValueError naming what the file
    should be and the fix."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if tuple(reader.fieldnames or ()) != tuple(columns):
            raise ValueError(f"{path} is not {what} (expected the columns {tuple(columns)}); {fix}")
        return list(reader)
