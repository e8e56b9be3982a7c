"""The comparison's baselines, each as (from scratch, warm start): one list for the trainer catalogue, the benchmark
runner and the tests."""
from typing import Tuple

from nnunetv2_dualunc.training.baselines.bcp import nnUNetTrainerBCP, nnUNetTrainerBCPWarmStart
from nnunetv2_dualunc.training.baselines.dct import (nnUNetTrainerDeepCoTraining,
                                                     nnUNetTrainerDeepCoTrainingWarmStart)
from nnunetv2_dualunc.training.baselines.fixmatch import nnUNetTrainerFixMatch, nnUNetTrainerFixMatchWarmStart
from nnunetv2_dualunc.training.baselines.mean_teacher import (nnUNetTrainerMeanTeacher,
                                                              nnUNetTrainerMeanTeacherWarmStart)
from nnunetv2_dualunc.training.baselines.st_plus_plus import nnUNetTrainerSTPlusPlus, nnUNetTrainerSTPlusPlusWarmStart
from nnunetv2_dualunc.training.baselines.ua_mt import nnUNetTrainerUAMT, nnUNetTrainerUAMTWarmStart
from nnunetv2_dualunc.training.baselines.urpc import nnUNetTrainerURPC, nnUNetTrainerURPCWarmStart

BASELINES: Tuple[Tuple[type, type], ...] = (
    (nnUNetTrainerMeanTeacher, nnUNetTrainerMeanTeacherWarmStart),
    (nnUNetTrainerUAMT, nnUNetTrainerUAMTWarmStart),
    (nnUNetTrainerURPC, nnUNetTrainerURPCWarmStart),
    (nnUNetTrainerFixMatch, nnUNetTrainerFixMatchWarmStart),
    (nnUNetTrainerBCP, nnUNetTrainerBCPWarmStart),
    (nnUNetTrainerSTPlusPlus, nnUNetTrainerSTPlusPlusWarmStart),
    (nnUNetTrainerDeepCoTraining, nnUNetTrainerDeepCoTrainingWarmStart),
)
#: the benchmark runner's method name of each (from scratch; "<name>_continued" is the warm start)
BASELINE_METHOD_NAMES = {"nnUNetTrainerMeanTeacher": "mean_teacher", "nnUNetTrainerUAMT": "ua_mt",
                         "nnUNetTrainerURPC": "urpc", "nnUNetTrainerFixMatch": "fixmatch", "nnUNetTrainerBCP": "bcp",
                         "nnUNetTrainerSTPlusPlus": "st_plus_plus", "nnUNetTrainerDeepCoTraining": "dct"}
