"""Every trainer a user chooses from, for nnU-Net's lookup by class name (nnUNet_extTrainer points at this folder).

One module is enough: nnU-Net imports each module of the folder and takes the first that has the requested name.
The classes live in nnunetv2_dualunc.training; their list is nnunetv2_dualunc/training/catalogue.py (also printed by
`nnunetv2_dualunc trainers`); this module only binds their names.
"""
from nnunetv2_dualunc.training.catalogue import catalogued_trainers

globals().update({trainer.__name__: trainer for trainer in catalogued_trainers()})
__all__ = [trainer.__name__ for trainer in catalogued_trainers()]
