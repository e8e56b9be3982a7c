# Thin re-export modules that nnU-Net imports through nnUNet_extTrainer. Keep real code out of here:
# nnU-Net purges modules imported from this folder after the lookup.
