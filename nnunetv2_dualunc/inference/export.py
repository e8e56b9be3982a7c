"""Turn a dual-decoder model folder into a plain nnU-Net model folder.

The auxiliary decoder only serves training (it measures pixel-level uncertainty). Dropping it and renaming the
trainer to ``nnUNetTrainer`` gives a model that a stock nnU-Net install, without this plugin, predicts with via
``nnUNetv2_predict_from_modelfolder`` or ``nnUNetPredictor.initialize_from_trained_model_folder``.
"""
import os
import shutil
from typing import Dict, List, Optional, Sequence, Union

import torch
from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json, maybe_mkdir_p, subdirs
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dualunc.atomic_files import atomic_torch_save
from nnunetv2_dualunc.network.dual_decoder import strip_auxiliary_decoder

PLAIN_TRAINER_NAME = 'nnUNetTrainer'
EXPORT_MARKER_KEY = 'exported_by_nnunetv2_dualunc'
_FILES_TO_COPY = ('dataset.json', 'plans.json', 'dataset_fingerprint.json')
_TRAIN_COMMAND_HINT = 'nnUNetv2_train DATASET CONFIGURATION FOLD -tr nnUNetTrainerDualUnc'

Fold = Union[int, str]


def _normalise_fold(fold: Fold) -> Fold:
    return 'all' if str(fold) == 'all' else int(fold)


def _available_folds(model_folder: str, checkpoint_name: str) -> List[Fold]:
    folds = [_normalise_fold(d[len('fold_'):]) for d in subdirs(model_folder, prefix='fold_', join=False)
             if isfile(join(model_folder, d, checkpoint_name))]
    return sorted(folds, key=lambda f: (f == 'all', f if f != 'all' else 0))


def _resolve_folds(model_folder: str, folds: Optional[Sequence[Fold]], checkpoint_name: str) -> List[Fold]:
    if folds is None:
        found = _available_folds(model_folder, checkpoint_name)
        if not found:
            raise FileNotFoundError(f'No fold_*/{checkpoint_name} in {model_folder}. Train a fold first '
                                    f'(`{_TRAIN_COMMAND_HINT}`) or pass the checkpoint_name you have.')
        return found
    resolved = [_normalise_fold(f) for f in folds]
    for fold in resolved:
        checkpoint_file = join(model_folder, f'fold_{fold}', checkpoint_name)
        if not isfile(checkpoint_file):
            raise FileNotFoundError(f'Checkpoint {checkpoint_file} does not exist. It is written by '
                                    f'`{_TRAIN_COMMAND_HINT}` (checkpoint_final.pth once training finished); '
                                    f'choose folds/checkpoint_name that exist.')
    return resolved


def _plans_and_configuration_names(model_folder: str, init_args: dict) -> tuple:
    """From the checkpoint's init_args, falling back to the folder name TRAINER__PLANS__CONFIGURATION."""
    name_parts = os.path.basename(os.path.normpath(model_folder)).split('__')
    from_folder = name_parts if len(name_parts) == 3 else [None, None, None]
    plans_name = (init_args.get('plans') or {}).get('plans_name') or from_folder[1]
    configuration = init_args.get('configuration') or from_folder[2]
    if plans_name is None or configuration is None:
        raise ValueError(f'Cannot tell plans name and configuration of {model_folder}: the checkpoint has no '
                         f'init_args and the folder is not named TRAINER__PLANS__CONFIGURATION. Pass the model '
                         f'folder nnUNetv2_train wrote.')
    return plans_name, configuration


def _plain_network_weights(checkpoint_file: str, checkpoint: dict, plans_manager: PlansManager,
                           configuration: str, dataset_json: dict) -> dict:
    """Stripped weights, verified to load strictly into the network the stock predictor will build."""
    weights = strip_auxiliary_decoder(checkpoint['network_weights'])
    configuration_manager = plans_manager.get_configuration(configuration)
    network = nnUNetTrainer.build_network_architecture(
        plans_manager, configuration_manager,
        determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
        enable_deep_supervision=False)
    try:
        network.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise RuntimeError(f'The weights in {checkpoint_file}, without the auxiliary decoder, do not fit the plain '
                           f'{configuration_manager.network_arch_class_name} of the plans next to it; was it trained '
                           f'with other plans? Details: {e}') from e
    return weights


def _refuse_to_overwrite_a_foreign_model(checkpoint_file: str) -> None:
    if isfile(checkpoint_file):
        existing = torch.load(checkpoint_file, map_location='cpu', weights_only=False)
        if not existing.get(EXPORT_MARKER_KEY):
            raise FileExistsError(f'{checkpoint_file} exists and was not written by export_plain_model (likely a '
                                  f'model trained with nnUNetTrainer). Choose another output_folder.')


def export_plain_model(trained_model_folder: str,
                       output_folder: str,
                       folds: Optional[Sequence[Fold]] = None,
                       checkpoint_name: str = 'checkpoint_final.pth') -> str:
    """Write ``output_folder/nnUNetTrainer__<plans>__<configuration>/`` (json files plus ``fold_N/<checkpoint_name>``)
    holding the main path of a dual-decoder model. ``folds=None`` exports every fold that has ``checkpoint_name``.

    The exported checkpoints are for inference: optimizer state is dropped (it covers the auxiliary decoder too),
    so training cannot be continued from them. The source folder is only read. Returns the written model folder.
    """
    source = os.path.abspath(trained_model_folder)
    if not os.path.isdir(source):
        raise FileNotFoundError(f'Trained model folder {source} does not exist. `{_TRAIN_COMMAND_HINT}` writes it '
                                f'to $nnUNet_results/DatasetXXX_NAME/nnUNetTrainerDualUnc__PLANS__CONFIGURATION.')
    for required in ('dataset.json', 'plans.json'):
        if not isfile(join(source, required)):
            raise FileNotFoundError(f'{join(source, required)} is missing; nnUNetv2_train copies it into the model '
                                    f'folder when training starts. Pass the folder nnUNetv2_train wrote.')
    folds = _resolve_folds(source, folds, checkpoint_name)

    checkpoints: Dict[Fold, dict] = {
        f: torch.load(join(source, f'fold_{f}', checkpoint_name), map_location='cpu', weights_only=False)
        for f in folds}
    plans_name, configuration = _plans_and_configuration_names(source, checkpoints[folds[0]].get('init_args') or {})
    for fold, checkpoint in checkpoints.items():
        fold_configuration = (checkpoint.get('init_args') or {}).get('configuration', configuration)
        if fold_configuration != configuration:
            raise ValueError(f'fold_{fold}/{checkpoint_name} in {source} is configuration {fold_configuration}, '
                             f'fold_{folds[0]} is {configuration}; export folds of one configuration only.')

    model_folder_name = convert_trainer_plans_config_to_identifier(PLAIN_TRAINER_NAME, plans_name, configuration)
    target = os.path.abspath(join(output_folder, model_folder_name))
    if target == source:
        raise ValueError(f'The export target {target} is the source folder; choose another output_folder.')
    for fold in folds:
        _refuse_to_overwrite_a_foreign_model(join(target, f'fold_{fold}', checkpoint_name))

    dataset_json = load_json(join(source, 'dataset.json'))
    plans_manager = PlansManager(join(source, 'plans.json'))
    exported = {}
    for fold, checkpoint in checkpoints.items():
        checkpoint_file = join(source, f'fold_{fold}', checkpoint_name)
        exported[fold] = {
            **checkpoint,
            'network_weights': _plain_network_weights(checkpoint_file, checkpoint, plans_manager, configuration,
                                                      dataset_json),
            'optimizer_state': None,
            'trainer_name': PLAIN_TRAINER_NAME,
            EXPORT_MARKER_KEY: {'source_checkpoint': checkpoint_file,
                                'source_trainer_name': checkpoint.get('trainer_name')},
        }

    maybe_mkdir_p(target)
    for file_name in _FILES_TO_COPY:
        if isfile(join(source, file_name)):
            shutil.copyfile(join(source, file_name), join(target, file_name))
    for fold, checkpoint in exported.items():
        fold_folder = join(target, f'fold_{fold}')
        maybe_mkdir_p(fold_folder)
        # never leave a half-written checkpoint for the predictor to find
        atomic_torch_save(checkpoint, join(fold_folder, checkpoint_name))
    return target
