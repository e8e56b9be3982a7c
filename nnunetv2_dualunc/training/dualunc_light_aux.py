"""DualUnc with a lighter auxiliary decoder: one convolution per stage at half the main decoder's width.

Why: a mirrored auxiliary decoder adds about as much compute as the main decoder (+64 % per sample in a stage on an
H200 with torch.compile, ACDC 2d); this one exists to measure how much of the method's accuracy survives a cheaper
second decoder. Everything else (Algorithm 1, Eq. 1-6) is unchanged. See docs/BENCHMARKS.md for its numbers.
"""
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc


class nnUNetTrainerDualUncLightAux(nnUNetTrainerDualUnc):
    aux_convs_per_stage = 1
    aux_width = 0.5
