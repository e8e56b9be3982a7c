"""The dual-decoder network: shapes, plain-network compatibility, deep supervision, gradients."""
import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from nnunetv2_dualunc.network import dual_decoder
from nnunetv2_dualunc.network.dual_decoder import (DualDecoderUNet, InterpolationDecoder, build_dual_decoder_network,
                                                   strip_auxiliary_decoder)

NUM_INPUT_CHANNELS = 1
NUM_CLASSES = 3
NETWORK_CLASSES = {
    'PlainConvUNet': 'dynamic_network_architectures.architectures.unet.PlainConvUNet',
    'ResidualEncoderUNet': 'dynamic_network_architectures.architectures.unet.ResidualEncoderUNet',
}
# 3 stages, features 4 -> 16; the 3D layout is anisotropic like nnU-Net's plans for thick slices
LAYOUT = {
    2: dict(patch_size=[16, 16], kernel_sizes=[[3, 3]] * 3, strides=[[1, 1], [2, 2], [2, 2]]),
    3: dict(patch_size=[4, 8, 8], kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
            strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]]),
}


def tiny_plans(network_class: str = 'PlainConvUNet', dim: int = 2) -> dict:
    """A minimal plans dict in nnU-Net's format with one configuration, '2d' or '3d_fullres'."""
    layout = LAYOUT[dim]
    arch_kwargs = {
        'n_stages': 3,
        'features_per_stage': [4, 8, 16],
        'conv_op': f'torch.nn.modules.conv.Conv{dim}d',
        'kernel_sizes': layout['kernel_sizes'],
        'strides': layout['strides'],
        'n_conv_per_stage_decoder': [1, 1],
        'conv_bias': True,
        'norm_op': f'torch.nn.modules.instancenorm.InstanceNorm{dim}d',
        'norm_op_kwargs': {'eps': 1e-05, 'affine': True},
        'dropout_op': None,
        'dropout_op_kwargs': None,
        'nonlin': 'torch.nn.LeakyReLU',
        'nonlin_kwargs': {'inplace': True},
    }
    if network_class == 'PlainConvUNet':
        arch_kwargs['n_conv_per_stage'] = [2, 2, 2]
    else:
        arch_kwargs['n_blocks_per_stage'] = [1, 2, 2]
    configuration = {
        'data_identifier': f'nnUNetPlans_{dim}d',
        'preprocessor_name': 'DefaultPreprocessor',
        'batch_size': 2,
        'patch_size': layout['patch_size'],
        'median_image_size_in_voxels': layout['patch_size'],
        'spacing': [1.0] * dim,
        'normalization_schemes': ['ZScoreNormalization'],
        'use_mask_for_norm': [False],
        'resampling_fn_data': 'resample_data_or_seg_to_shape',
        'resampling_fn_seg': 'resample_data_or_seg_to_shape',
        'resampling_fn_data_kwargs': {'is_seg': False, 'order': 3, 'order_z': 0, 'force_separate_z': None},
        'resampling_fn_seg_kwargs': {'is_seg': True, 'order': 1, 'order_z': 0, 'force_separate_z': None},
        'resampling_fn_probabilities': 'resample_data_or_seg_to_shape',
        'resampling_fn_probabilities_kwargs': {'is_seg': False, 'order': 1, 'order_z': 0, 'force_separate_z': None},
        'batch_dice': True,
        'architecture': {
            'network_class_name': NETWORK_CLASSES[network_class],
            'arch_kwargs': arch_kwargs,
            '_kw_requires_import': ['conv_op', 'norm_op', 'dropout_op', 'nonlin'],
        },
    }
    return {
        'dataset_name': 'Dataset999_Tiny',
        'plans_name': 'nnUNetPlans',
        'original_median_spacing_after_transp': [1.0] * dim,
        'original_median_shape_after_transp': layout['patch_size'],
        'image_reader_writer': 'SimpleITKIO',
        'transpose_forward': list(range(dim)),
        'transpose_backward': list(range(dim)),
        'configurations': {configuration_name(dim): configuration},
        'experiment_planner_used': 'ExperimentPlanner',
        'label_manager': 'LabelManager',
        'foreground_intensity_properties_per_channel': {
            '0': {'max': 1.0, 'mean': 0.0, 'median': 0.0, 'min': -1.0, 'percentile_00_5': -1.0,
                  'percentile_99_5': 1.0, 'std': 1.0}},
    }


def tiny_dataset_json() -> dict:
    return {'channel_names': {'0': 'MRI'}, 'labels': {'background': 0, 'a': 1, 'b': 2}, 'numTraining': 2,
            'file_ending': '.nii.gz'}


def configuration_name(dim: int) -> str:
    return '2d' if dim == 2 else '3d_fullres'


def build_dual(network_class: str, dim: int, deep_supervision: bool, seed: int = 0) -> DualDecoderUNet:
    plans_manager = PlansManager(tiny_plans(network_class, dim))
    torch.manual_seed(seed)
    return build_dual_decoder_network(plans_manager, plans_manager.get_configuration(configuration_name(dim)),
                                      NUM_INPUT_CHANNELS, NUM_CLASSES, deep_supervision)


def build_plain(network_class: str, dim: int, deep_supervision: bool, seed: int = 0) -> nn.Module:
    cm = PlansManager(tiny_plans(network_class, dim)).get_configuration(configuration_name(dim))
    torch.manual_seed(seed)
    return get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                  cm.network_arch_init_kwargs_req_import, NUM_INPUT_CHANNELS, NUM_CLASSES,
                                  allow_init=True, deep_supervision=deep_supervision)


def random_input(dim: int, batch_size: int = 2) -> torch.Tensor:
    torch.manual_seed(123)
    return torch.randn(batch_size, NUM_INPUT_CHANNELS, *LAYOUT[dim]['patch_size'])


def as_list(output):
    return output if isinstance(output, list) else [output]


ALL_VARIANTS = pytest.mark.parametrize('network_class', list(NETWORK_CLASSES))
ALL_DIMS = pytest.mark.parametrize('dim', [2, 3])


@ALL_VARIANTS
@ALL_DIMS
@pytest.mark.parametrize('deep_supervision', [True, False])
def test_main_and_aux_outputs_match_plain_network_shapes(network_class, dim, deep_supervision):
    dual = build_dual(network_class, dim, deep_supervision)
    plain = build_plain(network_class, dim, deep_supervision)
    x = random_input(dim)
    with torch.no_grad():
        main, aux = dual(x, return_auxiliary=True)
        expected = plain(x)
    assert isinstance(main, list) == isinstance(aux, list) == isinstance(expected, list) == deep_supervision
    expected_shapes = [tuple(t.shape) for t in as_list(expected)]
    assert len(expected_shapes) == (2 if deep_supervision else 1)
    assert expected_shapes[0] == (2, NUM_CLASSES, *LAYOUT[dim]['patch_size'])
    assert [tuple(t.shape) for t in as_list(main)] == expected_shapes
    assert [tuple(t.shape) for t in as_list(aux)] == expected_shapes
    # the decoders differ, so must their predictions
    assert not torch.allclose(as_list(main)[0], as_list(aux)[0])


@ALL_VARIANTS
@ALL_DIMS
def test_forward_without_auxiliary_is_the_plain_network(network_class, dim):
    dual = build_dual(network_class, dim, deep_supervision=False)
    plain = build_plain(network_class, dim, deep_supervision=False)  # same seed -> same main-path weights
    x = random_input(dim)
    with torch.no_grad():
        out = dual(x)
        expected = plain(x)
    assert isinstance(out, torch.Tensor)
    assert torch.equal(out, expected)


def test_encoder_runs_once_with_auxiliary_output():
    dual = build_dual('PlainConvUNet', 2, deep_supervision=False)
    calls = []
    dual.encoder.register_forward_hook(lambda *_: calls.append(1))
    dual(random_input(2), return_auxiliary=True)
    assert len(calls) == 1


def test_deep_supervision_property_toggles_both_decoders():
    dual = build_dual('ResidualEncoderUNet', 2, deep_supervision=True)
    x = random_input(2)
    dual.deep_supervision = False
    assert dual.decoder.deep_supervision is False and dual.aux_decoder.deep_supervision is False
    main, aux = dual(x, return_auxiliary=True)
    assert isinstance(main, torch.Tensor) and isinstance(aux, torch.Tensor)
    dual.deep_supervision = True
    assert dual.deep_supervision is True and dual.aux_decoder.deep_supervision is True
    main, aux = dual(x, return_auxiliary=True)
    assert len(main) == len(aux) == 2
    # what nnUNetTrainer.set_deep_supervision_enabled does: only the main path follows
    dual.decoder.deep_supervision = False
    assert isinstance(dual(x), torch.Tensor)
    assert dual.aux_decoder.deep_supervision is True


@ALL_VARIANTS
@ALL_DIMS
def test_stripped_state_dict_loads_strictly_into_plain_network(network_class, dim):
    dual = build_dual(network_class, dim, deep_supervision=True, seed=1)
    plain = build_plain(network_class, dim, deep_supervision=False, seed=2)
    state = dual.state_dict()
    aux_keys = [k for k in state if k.startswith('aux_decoder.')]
    assert aux_keys and not any(k.startswith('aux_decoder.encoder.') for k in aux_keys)
    main_keys = [k for k in state if not k.startswith('aux_decoder.')]
    assert main_keys == list(plain.state_dict().keys())

    stripped = strip_auxiliary_decoder(state)
    assert list(stripped.keys()) == main_keys
    assert not any(k.startswith('aux_decoder') for k in stripped._metadata)
    plain.load_state_dict(stripped, strict=True)
    dual.deep_supervision = False
    x = random_input(dim)
    with torch.no_grad():
        assert torch.equal(plain(x), dual(x))


def test_gradients_reach_encoder_from_aux_output_only():
    dual = build_dual('PlainConvUNet', 3, deep_supervision=True)
    _, aux = dual(random_input(3), return_auxiliary=True)
    sum(t.square().mean() for t in aux).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dual.encoder.parameters() if p.dim() > 1)
    assert all(p.grad is None for p in dual.decoder.parameters() if not any(p is q for q in dual.encoder.parameters()))
    assert all(p.grad is not None for p in dual.aux_decoder.parameters())


@pytest.mark.parametrize('dim, mode', [(2, 'bilinear'), (3, 'trilinear')])
def test_aux_decoder_upsamples_by_interpolation_not_transposed_conv(monkeypatch, dim, mode):
    dual = build_dual('ResidualEncoderUNet', dim, deep_supervision=False)
    assert not any(isinstance(m, nn.modules.conv._ConvTransposeNd) for m in dual.aux_decoder.modules())
    assert any(isinstance(m, nn.modules.conv._ConvTransposeNd) for m in dual.decoder.modules())
    modes = []
    interpolate = torch.nn.functional.interpolate

    def recording_interpolate(*args, **kwargs):
        modes.append(kwargs.get('mode'))
        return interpolate(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, 'interpolate', recording_interpolate)
    dual.aux_decoder(dual.encoder(random_input(dim)))
    assert modes == [mode, mode]  # one per decoder stage


def test_aux_decoder_is_initialised_like_the_base_network():
    dual = build_dual('PlainConvUNet', 2, deep_supervision=False)
    # InitWeights_He zeroes conv biases; torch's default init would not
    biases = [m.bias for m in dual.aux_decoder.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)


def test_interpolation_decoder_does_not_hold_the_encoder():
    unet = build_plain('PlainConvUNet', 2, deep_supervision=False)
    aux = InterpolationDecoder(unet.encoder, NUM_CLASSES, 1, deep_supervision=False)
    assert not any(m is unet.encoder for m in aux.modules())
    assert not any(k.startswith('encoder.') for k in aux.state_dict())


def test_network_without_encoder_and_decoder_is_rejected(monkeypatch):
    monkeypatch.setattr(dual_decoder, 'get_network_from_plans', lambda *a, **k: nn.Conv2d(1, 3, 1))
    plans_manager = PlansManager(tiny_plans('PlainConvUNet', 2))
    with pytest.raises(TypeError, match='PlainConvUNet.*Conv2d.*no .encoder/.decoder'):
        build_dual_decoder_network(plans_manager, plans_manager.get_configuration('2d'), 1, NUM_CLASSES)



def _conv_counts(decoder: InterpolationDecoder) -> list:
    return [sum(isinstance(m, (nn.Conv2d, nn.Conv3d)) for m in stage.modules()) for stage in decoder.stages]


@ALL_DIMS
def test_lighter_aux_decoder_has_the_requested_depth_and_width_and_same_outputs(dim):
    plans_manager = PlansManager(tiny_plans('PlainConvUNet', dim))
    configuration = plans_manager.get_configuration(configuration_name(dim))
    mirrored = build_dual_decoder_network(plans_manager, configuration, NUM_INPUT_CHANNELS, NUM_CLASSES, True)
    light = build_dual_decoder_network(plans_manager, configuration, NUM_INPUT_CHANNELS, NUM_CLASSES, True,
                                       aux_convs_per_stage=2, aux_width=0.5)
    assert _conv_counts(mirrored.aux_decoder) == [1, 1]  # the tiny plans' n_conv_per_stage_decoder
    assert _conv_counts(light.aux_decoder) == [2, 2]
    # stage widths: half of the skips' 8 and 4 features; the main decoder keeps its own
    assert [h.in_channels for h in light.aux_decoder.seg_layers] == [4, 2]
    assert [h.in_channels for h in mirrored.aux_decoder.seg_layers] == [8, 4]
    with torch.no_grad():
        main, aux = light(random_input(dim), return_auxiliary=True)
    assert [t.shape for t in aux] == [t.shape for t in main]


def test_aux_width_outside_zero_to_one_is_rejected():
    unet = build_plain('PlainConvUNet', 2, deep_supervision=False)
    for width in (0.0, 1.5):
        with pytest.raises(ValueError, match='width must be in'):
            InterpolationDecoder(unet.encoder, NUM_CLASSES, 1, deep_supervision=False, width=width)


def test_trainer_class_attributes_reach_the_network_nnunet_predictor_builds():
    """nnU-Net's predictor calls build_network_architecture on the trainer class: the light variant's auxiliary
    decoder must come out the same there as in training, or its checkpoints would not load."""
    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
    nnUNetTrainerDualUncLightAux = type("LightAux", (nnUNetTrainerDualUnc,), {"aux_convs_per_stage": 1,
                                                                             "aux_width": 0.5})

    plans_manager = PlansManager(tiny_plans('PlainConvUNet', 2))
    configuration = plans_manager.get_configuration('2d')
    light = nnUNetTrainerDualUncLightAux.build_network_architecture(plans_manager, configuration, 1, NUM_CLASSES,
                                                                    enable_deep_supervision=False)
    full = nnUNetTrainerDualUnc.build_network_architecture(plans_manager, configuration, 1, NUM_CLASSES, False)
    assert [h.in_channels for h in light.aux_decoder.seg_layers] == [4, 2]
    assert [h.in_channels for h in full.aux_decoder.seg_layers] == [8, 4]
    rebuilt = nnUNetTrainerDualUncLightAux.build_network_architecture(plans_manager, configuration, 1, NUM_CLASSES,
                                                                      enable_deep_supervision=True)
    rebuilt.load_state_dict(light.state_dict())  # strict
    with pytest.raises(RuntimeError):
        full.load_state_dict(light.state_dict())
