"""Sample-level uncertainty (Eq. 1) and the reliable / unreliable split of the unlabelled cases.

Eq. 1 compares each earlier snapshot's softmax prediction with the last snapshot's (the teacher):
    u(x) = 1/(K-1) * sum_{i<K} mean[(F_i(x) - F_K(x))^2]
where the mean runs over classes and voxels. Cases are sorted by u ascending and the first reliable_fraction of them
is "reliable" (the paper: the first half).

Option (not the paper's): ``per_foreground_voxel`` divides u by the fraction of voxels the teacher labels as
foreground. Why: the snapshots disagree mostly on and around the structures, so the image-wide mean grows with the
structures' size, while small structures are the ones labelled worst; on ACDC (7 labelled, CPU profile) this size
effect hid the ranking's signal (docs/log/2026-11-25_acdc-cpu-profile-from-scratch.md, ranking quality).
"""
import json
import math
import os
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from nnunetv2_dualunc.atomic_files import atomic_output
from nnunetv2_dualunc.run_layout import ranking_settings_path
from nnunetv2_dualunc.tables import read_tsv, write_tsv

RELIABLE = "reliable"
UNRELIABLE = "unreliable"
SAMPLE_RANKING_COLUMNS = ("case", "score", "rank", "subset")


def sample_uncertainty(teacher_probabilities: Tensor, earlier_snapshot_probabilities: Iterable[Tensor],
                       per_foreground_voxel: bool = False) -> float:
    """Eq. 1 for one case (probabilities: classes first). Takes the earlier snapshots lazily so only two probability
    maps live at once. per_foreground_voxel: u / (fraction of voxels whose teacher argmax is not background); a case
    the teacher sees no foreground in counts as one foreground voxel, so it ranks as very uncertain."""
    reference = teacher_probabilities.float()
    total, count = 0.0, 0
    for probabilities in earlier_snapshot_probabilities:
        if probabilities.shape != reference.shape:
            raise ValueError(f"snapshot prediction shape {tuple(probabilities.shape)} differs from the teacher's "
                             f"{tuple(reference.shape)}")
        total += torch.mean((probabilities.float() - reference) ** 2).item()
        count += 1
    if count == 0:
        raise ValueError("Eq. 1 needs at least two snapshots (K >= 2): one earlier snapshot besides the teacher")
    score = total / count
    if per_foreground_voxel:
        voxels = reference[0].numel()
        foreground_voxels = int((reference.argmax(0) != 0).sum().item())
        score *= voxels / max(foreground_voxels, 1)
    return score


def prediction_instability(final_probabilities: Tensor, earlier_snapshot_probabilities: Iterable[Tensor]) -> float:
    """ST++'s stability score turned into an uncertainty that sorts the same way as Eq. 1 (lower: more reliable):
    1 - the mean over earlier snapshots of the class-mean IoU between their argmax and the final snapshot's (classes
    present in neither map left out, as a confusion-matrix mean IoU leaves them out)."""
    final = final_probabilities.argmax(0)
    ious = []
    for probabilities in earlier_snapshot_probabilities:
        if probabilities.shape != final_probabilities.shape:
            raise ValueError(f"snapshot prediction shape {tuple(probabilities.shape)} differs from the final "
                             f"{tuple(final_probabilities.shape)}")
        earlier = probabilities.argmax(0)
        per_class = []
        for c in range(final_probabilities.shape[0]):
            union = ((final == c) | (earlier == c)).sum().item()
            if union:
                per_class.append(((final == c) & (earlier == c)).sum().item() / union)
        ious.append(sum(per_class) / len(per_class))
    if not ious:
        raise ValueError("the stability score needs at least one earlier snapshot besides the final one")
    return 1.0 - sum(ious) / len(ious)


@dataclass(frozen=True)
class RankedCase:
    case: str
    score: float
    rank: int  # 1 = most certain
    subset: str  # RELIABLE or UNRELIABLE


def rank_cases(scores: Mapping[str, float], reliable_fraction: float = 0.5) -> List[RankedCase]:
    """Sort ascending by uncertainty (ties broken by case id, so the result never depends on dict order) and
    mark the first ceil(fraction * n) cases reliable: with an odd count the middle case counts as reliable."""
    if not 0.0 < reliable_fraction <= 1.0:
        raise ValueError(f"reliable_fraction must be in (0, 1], got {reliable_fraction}")
    ordered = sorted(scores.items(), key=lambda item: (item[1], item[0]))
    n_reliable = math.ceil(reliable_fraction * len(ordered))
    return [RankedCase(case, float(score), rank + 1, RELIABLE if rank < n_reliable else UNRELIABLE)
            for rank, (case, score) in enumerate(ordered)]


def reliable_cases(ranking: Sequence[RankedCase]) -> List[str]:
    return [r.case for r in ranking if r.subset == RELIABLE]


def write_ranking(path: str, ranking: Sequence[RankedCase], settings: Optional[dict] = None) -> None:
    """Write a tab-separated table (case, score, rank, subset) atomically: a reader never sees half a file.
    settings (snapshot epochs, normalisation, reliable fraction) go to ranking_settings_path(path), written after
    the table, so a table is only ever trusted together with the settings that made it."""
    write_tsv(path, SAMPLE_RANKING_COLUMNS, ((r.case, repr(r.score), r.rank, r.subset) for r in ranking))
    if settings is not None:
        with atomic_output(ranking_settings_path(path)) as f:
            json.dump(settings, f, indent=1, sort_keys=True)


def reusable_ranking(path: str, score_settings: dict,
                     cases: Sequence[str]) -> Optional[Tuple[List[RankedCase], dict]]:
    """An earlier ranking table and its recorded settings, if it covers exactly these cases and the settings agree
    with score_settings on every key given (those that decide the scores: snapshots, normalisation); else None.
    Only its scores are to be trusted: the caller re-splits them with its own reliable fraction."""
    settings_file = ranking_settings_path(path)
    if not (os.path.isfile(path) and os.path.isfile(settings_file)):
        return None
    with open(settings_file) as f:
        recorded = json.load(f)
    if any(recorded.get(key) != value for key, value in score_settings.items()):
        return None
    ranking = read_ranking(path)
    if sorted(r.case for r in ranking) != sorted(cases):
        return None
    return ranking, recorded


def read_ranking(path: str) -> List[RankedCase]:
    rows = read_tsv(path, SAMPLE_RANKING_COLUMNS, "a ranking file",
                    "delete it to let the trainer recompute the ranking from the saved snapshots")
    return [RankedCase(row["case"], float(row["score"]), int(row["rank"]), row["subset"]) for row in rows]
