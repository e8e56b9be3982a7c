"""Batches of unlabelled images themselves, for the methods that compute their targets in each step (Mean Teacher,
UA-MT, URPC, FixMatch, BCP, DCT; training/baselines/), through nnU-Net's own dataset, loader and augmentation.

The preprocessed unlabelled cases (data/unlabelled.py) have no label and so no foreground locations: nnU-Net's loader
would look them up for every patch. Here they have none, and patches are drawn uniformly over the image, as the
papers draw crops of unlabelled images. The target the loader hands out is the nonzero mask (all 0 after nnU-Net's
augmentation); a trainer replaces it before any loss sees it.
"""
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2


class UnlabelledImagesDataset(nnUNetDatasetBlosc2):
    """nnU-Net's Blosc2 dataset over preprocessed unlabelled cases, each with empty class locations."""

    def load_case(self, identifier: str):
        data, seg, seg_prev, properties = super().load_case(identifier)
        properties = dict(properties)
        properties.setdefault("class_locations", {})
        return data, seg, seg_prev, properties


class UniformPatchLoader(nnUNetDataLoader):
    """nnUNetDataLoader whose patches are placed uniformly at random: no foreground oversampling, and no search for
    annotated voxels with an ignore label (an unlabelled image has none)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.oversample_foreground_percent = 0.0
        self.has_ignore = False

    def get_bbox(self, data_shape, force_fg: bool, class_locations, overwrite_class=None, verbose: bool = False):
        return super().get_bbox(data_shape, False, class_locations, overwrite_class, verbose)
