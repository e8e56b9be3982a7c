"""nnunetv2_dualunc: self-training with dual uncertainty as an nnU-Net v2 plugin."""

__version__ = "0.1.0"
