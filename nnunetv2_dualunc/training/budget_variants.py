"""Budget variants: one trainer class = one method + one training budget, made by one factory.

nnU-Net picks a trainer by class name (``-tr NAME``) and records that name in its checkpoints, so every budget a
user, the demo, a benchmark or a test trains with must be a named class that nnU-Net's lookup finds. ``budget_variant``
makes it: a supervised trainer gets nnU-Net's ``num_epochs`` / iterations, a self-training trainer (Algorithm 1)
gets its three phases. Both then spend epochs x iterations gradient steps, so variants with equal totals compare
like nnU-Net's own nnUNetTrainer_Xepochs.

The product's short CPU variants live here, named like nnU-Net's nnUNetTrainer_Xepochs (X = total epochs).
"""
from typing import Optional, Sequence, Type, Union

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.sample_sorting import nnUNetTrainerSelfTrainingSS
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining

Epochs = Union[int, Sequence[int]]


def budget_variant(base: Type[nnUNetTrainer], name: str, epochs: Epochs, iterations: Optional[int] = None,
                   val_iterations: Optional[int] = None, module: Optional[str] = None, **attributes) -> type:
    """A subclass of base called name that trains for the given budget.

    epochs: the total for a supervised trainer; (pre-training, stage 1, stage 2) for a self-training one.
    iterations / val_iterations: per epoch (None: the base's). attributes: further class attributes (e.g.
    num_snapshots, warm_start_trainer, save_every); on a supervised trainer they are also set on the instance,
    because nnUNetTrainer.__init__ assigns its settings to the instance. module: the module the class is bound in
    (default: the caller's, where nnU-Net's lookup finds it)."""
    if issubclass(base, nnUNetTrainerSelfTraining):
        if isinstance(epochs, int) or len(epochs) != 3:
            raise ValueError(f"{name}: a self-training budget is (pre-training, stage 1, stage 2) epochs, got {epochs}")
        namespace = dict(attributes, pretrain_epochs=epochs[0], stage1_epochs=epochs[1], stage2_epochs=epochs[2])
        if iterations is not None:
            namespace["iterations_per_epoch"] = iterations
        if val_iterations is not None:
            namespace["val_iterations_per_epoch"] = val_iterations
    else:
        if not isinstance(epochs, int):
            raise ValueError(f"{name}: a supervised budget is one number of epochs, got {epochs}")
        settings = dict(attributes, num_epochs=epochs)
        if iterations is not None:
            settings["num_iterations_per_epoch"] = iterations
        if val_iterations is not None:
            settings["num_val_iterations_per_epoch"] = val_iterations

        # nnU-Net records its constructor's arguments by name (for checkpoints): the signature is spelled out
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cuda")):
            super(variant, self).__init__(plans, configuration, fold, dataset_json, device)
            for key, value in settings.items():
                setattr(self, key, value)

        namespace = dict(attributes, __init__=__init__, num_epochs=epochs)  # on the class too: for the catalogue
    if module is None:
        import inspect
        module = inspect.currentframe().f_back.f_globals.get("__name__", __name__)
    variant = type(name, (base,), dict(namespace, __module__=module, __qualname__=name))
    return variant


nnUNetTrainerSelfTraining_20epochs = budget_variant(nnUNetTrainerSelfTraining, "nnUNetTrainerSelfTraining_20epochs",
                                                    (10, 0, 10))
nnUNetTrainerSelfTrainingSS_20epochs = budget_variant(nnUNetTrainerSelfTrainingSS,
                                                      "nnUNetTrainerSelfTrainingSS_20epochs", (10, 5, 5))
nnUNetTrainerDualUnc_20epochs = budget_variant(nnUNetTrainerDualUnc, "nnUNetTrainerDualUnc_20epochs", (10, 5, 5))
