"""Where a training run's wall-clock went, read from nnU-Net's training_log_*.txt files of one fold folder.

A resumed run writes one log per attempt; all are read. Reported (seconds): the whole run (first to last line of
each log, summed), epochs per phase (nnU-Net's 'Epoch time' lines, less the ranking and pseudo-labelling that
run at the start of a phase's first epoch), the ranking (Eq. 1), the pseudo-labelling
rounds, nnU-Net's final validation, and the share of ranking + pseudo-labelling in the whole run;
`epoch_s` lists each phase's epoch durations in order (the same net figures), e.g. to skip torch.compile's first epoch.
"""
import glob
import os
import re
import sys
from datetime import datetime
from typing import Dict, List, Tuple

_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+): (.*)$")


def read_events(log_file: str) -> List[Tuple[datetime, str]]:
    events = []
    with open(log_file) as f:
        for line in f:
            match = _LINE.match(line.rstrip("\n"))
            if match:
                events.append((datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S.%f"), match[2].strip()))
    return events


def _span(events, start: int, end_pattern: str) -> float:
    """Seconds from events[start] to the next event matching end_pattern (0 if the run stopped before it)."""
    for t, text in events[start + 1:]:
        if re.search(end_pattern, text):
            return (t - events[start][0]).total_seconds()
    return 0.0


def schedule_from_log(fold_folder: str) -> Dict[str, int]:
    """Epochs per phase, from the 'Self-training schedule: pre-train P, stage 1 S1, stage 2 S2 epochs' line."""
    for log in sorted(glob.glob(os.path.join(fold_folder, "training_log_*.txt"))):
        for _, text in read_events(log):
            match = re.search(r"pre-train (\d+), stage 1 (\d+), stage 2 (\d+) epochs", text)
            if match:
                return dict(zip(("pretrain", "stage1", "stage2"), map(int, match.groups())))
    raise ValueError(f"No self-training schedule line in the training logs of {fold_folder}")


def phase_timings(fold_folder: str) -> Dict[str, float]:
    logs = sorted(glob.glob(os.path.join(fold_folder, "training_log_*.txt")))
    result: Dict[str, float] = {"run_s": 0.0, "ranking_s": 0.0, "pseudo_labelling_s": 0.0,
                                "final_validation_s": 0.0}
    epoch_s: Dict[str, List[float]] = {}
    for log in logs:
        events = read_events(log)
        if not events:
            continue
        result["run_s"] += (events[-1][0] - events[0][0]).total_seconds()
        phase = "pretrain"
        inside_epoch = 0.0  # ranking/pseudo-labelling run at an epoch's start, inside nnU-Net's 'Epoch time'
        for i, (_, text) in enumerate(events):
            entered = re.search(r"entering phase '(\w+)'", text)
            if entered:
                phase = entered[1]
            elif text.startswith("ranking ") and "unlabelled cases with snapshots" in text:
                seconds = _span(events, i, r"^ranking written")
                result["ranking_s"] += seconds
                inside_epoch += seconds
            elif text.startswith("pseudo-labelling "):
                seconds = _span(events, i, r"pseudo-labelled cases in use")
                result["pseudo_labelling_s"] += seconds
                inside_epoch += seconds
            elif text.startswith("Epoch time:"):
                seconds = float(text.split()[2]) - inside_epoch
                result[f"epochs_{phase}_s"] = result.get(f"epochs_{phase}_s", 0.0) + seconds
                epoch_s.setdefault(phase, []).append(round(seconds, 2))
                inside_epoch = 0.0
            elif text.startswith("Training done"):
                result["final_validation_s"] += _span(events, i, r"Mean Validation Dice")
    if result["run_s"]:
        result["ranking_and_pseudo_labelling_share"] = \
            (result["ranking_s"] + result["pseudo_labelling_s"]) / result["run_s"]
    return {**{k: round(v, 4 if k.endswith("share") else 1) for k, v in result.items()}, "epoch_s": epoch_s}


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(folder, phase_timings(folder))
