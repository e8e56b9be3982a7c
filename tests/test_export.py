"""Exporting a dual-decoder model folder to a plain nnU-Net model folder that stock nnU-Net predicts with."""
import os

import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json, maybe_mkdir_p, save_json
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from helpers import folder_checksums
from nnunetv2_dualunc.inference.export import export_plain_model
from test_network import LAYOUT, build_dual, random_input, tiny_dataset_json, tiny_plans

SOURCE_NAME = 'nnUNetTrainerDualUnc__nnUNetPlans__2d'


def write_fake_results_folder(root: str, folds=(0,)) -> tuple:
    """What nnUNetv2_train -tr nnUNetTrainerDualUnc leaves behind, with one SGD step of optimizer state."""
    plans, dataset_json = tiny_plans('PlainConvUNet', 2), tiny_dataset_json()
    model_folder = join(root, 'Dataset999_Tiny', SOURCE_NAME)
    maybe_mkdir_p(model_folder)
    save_json(plans, join(model_folder, 'plans.json'))
    save_json(dataset_json, join(model_folder, 'dataset.json'))
    save_json({'spacings': [[1.0, 1.0]]}, join(model_folder, 'dataset_fingerprint.json'))
    networks = {}
    for fold in folds:
        dual = build_dual('PlainConvUNet', 2, deep_supervision=True, seed=fold)
        optimizer = torch.optim.SGD(dual.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
        main, aux = dual(random_input(2), return_auxiliary=True)
        (sum(t.mean() for t in main) + sum(t.mean() for t in aux)).backward()
        optimizer.step()
        checkpoint = {
            'network_weights': dual.state_dict(),
            'optimizer_state': optimizer.state_dict(),
            'grad_scaler_state': None,
            'logging': {'mean_fg_dice': [0.5], 'ema_fg_dice': [0.5]},
            '_best_ema': 0.5,
            'current_epoch': 1,
            'init_args': {'plans': plans, 'configuration': '2d', 'fold': fold, 'dataset_json': dataset_json,
                          'device': torch.device('cpu')},
            'trainer_name': 'nnUNetTrainerDualUnc',
            'inference_allowed_mirroring_axes': (0, 1),
        }
        maybe_mkdir_p(join(model_folder, f'fold_{fold}'))
        torch.save(checkpoint, join(model_folder, f'fold_{fold}', 'checkpoint_final.pth'))
        networks[fold] = dual
    return model_folder, networks


def test_stock_predictor_loads_export_and_reproduces_main_output(tmp_path, monkeypatch):
    monkeypatch.delenv('nnUNet_extTrainer', raising=False)  # prove the stock trainer class is used
    source, networks = write_fake_results_folder(str(tmp_path / 'results'))
    before = folder_checksums(source)

    exported = export_plain_model(source, str(tmp_path / 'export'))

    assert exported == str(tmp_path / 'export' / 'nnUNetTrainer__nnUNetPlans__2d')
    assert sorted(os.listdir(exported)) == ['dataset.json', 'dataset_fingerprint.json', 'fold_0', 'plans.json']
    assert load_json(join(exported, 'plans.json')) == load_json(join(source, 'plans.json'))
    assert folder_checksums(source) == before  # source untouched
    checkpoint = torch.load(join(exported, 'fold_0', 'checkpoint_final.pth'), weights_only=False)
    assert checkpoint['trainer_name'] == 'nnUNetTrainer'
    assert checkpoint['optimizer_state'] is None
    assert not any(k.startswith('aux_decoder.') for k in checkpoint['network_weights'])
    assert checkpoint['inference_allowed_mirroring_axes'] == (0, 1)

    predictor = nnUNetPredictor(use_mirroring=False, device=torch.device('cpu'), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(exported, use_folds=(0,), checkpoint_name='checkpoint_final.pth')
    assert predictor.trainer_name == 'nnUNetTrainer'
    assert type(predictor.network) is PlainConvUNet

    dual = networks[0].eval()
    dual.deep_supervision = False
    x = random_input(2, batch_size=1)
    with torch.no_grad():
        expected = dual(x)
        assert torch.equal(predictor.network.eval()(x), expected)
        # one patch-sized tile through nnU-Net's sliding window (2D: a stack of one slice) gives the same logits
        logits = predictor.predict_sliding_window_return_logits(x[0][:, None])
    assert logits.shape == (3, 1, *LAYOUT[2]['patch_size'])
    # nnU-Net accumulates tiles in float16, weighted by a Gaussian that is tiny (so imprecise) at the border
    torch.testing.assert_close(logits[:, 0, 4:-4, 4:-4].float(), expected[0, :, 4:-4, 4:-4], rtol=1e-2, atol=1e-3)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(logits[:, 0].float(), expected[0], rtol=0, atol=0.05)


def test_export_all_available_folds_by_default(tmp_path):
    source, networks = write_fake_results_folder(str(tmp_path / 'results'), folds=(0, 2))
    exported = export_plain_model(source, str(tmp_path / 'export'))
    assert sorted(d for d in os.listdir(exported) if d.startswith('fold_')) == ['fold_0', 'fold_2']
    weights = torch.load(join(exported, 'fold_2', 'checkpoint_final.pth'), weights_only=False)['network_weights']
    assert torch.equal(weights['decoder.seg_layers.0.weight'], networks[2].decoder.seg_layers[0].weight)
    # exporting again overwrites our own export
    assert export_plain_model(source, str(tmp_path / 'export'), folds=[2]) == exported


def test_missing_folder_or_checkpoint_names_path_and_command(tmp_path):
    missing = str(tmp_path / 'nope')
    with pytest.raises(FileNotFoundError, match=f'{missing}.*nnUNetv2_train'):
        export_plain_model(missing, str(tmp_path / 'export'))
    source, _ = write_fake_results_folder(str(tmp_path / 'results'))
    with pytest.raises(FileNotFoundError, match='fold_1.*checkpoint_final.pth.*nnUNetv2_train'):
        export_plain_model(source, str(tmp_path / 'export'), folds=[1])
    with pytest.raises(FileNotFoundError, match='checkpoint_best.pth'):
        export_plain_model(source, str(tmp_path / 'export'), checkpoint_name='checkpoint_best.pth')
    assert not os.path.exists(tmp_path / 'export')


def test_refuses_to_overwrite_a_model_trained_with_plain_nnunet(tmp_path):
    source, _ = write_fake_results_folder(str(tmp_path / 'results'))
    foreign = tmp_path / 'export' / 'nnUNetTrainer__nnUNetPlans__2d' / 'fold_0'
    foreign.mkdir(parents=True)
    torch.save({'trainer_name': 'nnUNetTrainer'}, foreign / 'checkpoint_final.pth')
    with pytest.raises(FileExistsError, match='another output_folder'):
        export_plain_model(source, str(tmp_path / 'export'))
    assert torch.load(foreign / 'checkpoint_final.pth', weights_only=False) == {'trainer_name': 'nnUNetTrainer'}
