"""One encoder, two decoders (paper section 3.2).

The main decoder is the plain nnU-Net decoder (transposed-convolution upsampling). The auxiliary decoder sees the
same skips but upsamples by (bi/tri)linear interpolation followed by a convolution. Because the two decoders
upsample differently, they disagree where the prediction is unreliable; the KL divergence between their outputs is
the pixel-level uncertainty.

The main path keeps the attribute names of the plain network (``encoder``, ``decoder``) so a trained model minus
``aux_decoder.*`` is an ordinary nnU-Net checkpoint.
"""
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU, StackedConvBlocks
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn
from torch.nn import functional as F

AUX_DECODER_PREFIX = 'aux_decoder.'

_INTERPOLATION_MODE_BY_DIM = {1: 'linear', 2: 'bilinear', 3: 'trilinear'}
_REQUIRED_ENCODER_ATTRIBUTES = ('output_channels', 'strides', 'kernel_sizes', 'conv_op', 'norm_op', 'norm_op_kwargs',
                                'nonlin', 'nonlin_kwargs', 'dropout_op', 'dropout_op_kwargs', 'conv_bias')


class InterpolationUpsample(nn.Module):
    """Resize to the skip's spatial shape by linear interpolation, then a 1x1 convolution to the skip's channels.

    Counterpart of the main decoder's transposed convolution: like it, a purely linear map (no norm, no nonlin),
    and with a 1x1 kernel about as cheap (a 3x3 kernel at the upsampled resolution made the dual network ~5 %
    slower per training step: 2d_cpu ACDC plans, batch 16, 2-core CPU). Resizing to the skip's shape rather than
    by a scale factor keeps it exact for any stride.
    """

    def __init__(self, conv_op, input_channels: int, output_channels: int, kernel_size, conv_bias: bool):
        super().__init__()
        self.mode = _INTERPOLATION_MODE_BY_DIM[convert_conv_op_to_dim(conv_op)]
        self.conv = ConvDropoutNormReLU(conv_op, input_channels, output_channels, kernel_size, 1, conv_bias)

    def forward(self, x: torch.Tensor, target_spatial_shape: Sequence[int]) -> torch.Tensor:
        x = F.interpolate(x, size=tuple(target_spatial_shape), mode=self.mode, align_corners=False)
        return self.conv(x)


class InterpolationDecoder(nn.Module):
    """A U-Net decoder like dynamic_network_architectures' UNetDecoder, but without transposed convolutions.

    Stages are ordered by computation (lowest resolution first). Each stage: interpolation upsampling + conv, concat
    with the skip, ``n_conv_per_stage`` conv blocks, and a 1x1 segmentation head. The encoder is only read for its
    hyperparameters and NOT stored, so its weights do not appear a second (third) time in the state dict.
    """

    def __init__(self,
                 encoder: nn.Module,
                 num_classes: int,
                 n_conv_per_stage: Union[int, Tuple[int, ...], List[int]],
                 deep_supervision: bool,
                 nonlin_first: bool = False,
                 width: float = 1.0):
        """width scales each stage's feature count (1.0: as the main decoder). A narrower, shallower auxiliary
        decoder costs less per step; the skips it concatenates keep the encoder's width."""
        super().__init__()
        if not 0 < width <= 1:
            raise ValueError(f'width must be in (0, 1], got {width}')
        missing = [a for a in _REQUIRED_ENCODER_ATTRIBUTES if not hasattr(encoder, a)]
        if missing:
            raise TypeError(f'InterpolationDecoder needs a dynamic_network_architectures-style encoder '
                            f'(PlainConvEncoder, ResidualEncoder); {type(encoder).__name__} lacks {missing}. Use a '
                            f'plans network class such as PlainConvUNet or ResidualEncoderUNet.')
        self.deep_supervision = deep_supervision
        self.num_classes = num_classes
        n_stages_encoder = len(encoder.output_channels)
        if isinstance(n_conv_per_stage, int):
            n_conv_per_stage = [n_conv_per_stage] * (n_stages_encoder - 1)
        if len(n_conv_per_stage) != n_stages_encoder - 1:
            raise ValueError(f'n_conv_per_stage needs one entry per decoder stage ({n_stages_encoder - 1}), '
                             f'got {list(n_conv_per_stage)}')
        kernel_sizes = encoder.kernel_sizes
        if isinstance(kernel_sizes, int):
            kernel_sizes = [kernel_sizes] * n_stages_encoder

        upsamplers, stages, seg_layers = [], [], []
        features_below = encoder.output_channels[-1]
        for s in range(1, n_stages_encoder):
            features_skip = encoder.output_channels[-(s + 1)]
            features = max(1, round(width * features_skip))
            kernel_size = kernel_sizes[-(s + 1)]
            upsamplers.append(InterpolationUpsample(encoder.conv_op, features_below, features, 1,
                                                    encoder.conv_bias))
            stages.append(StackedConvBlocks(
                n_conv_per_stage[s - 1], encoder.conv_op, features + features_skip, features, kernel_size, 1,
                encoder.conv_bias, encoder.norm_op, encoder.norm_op_kwargs, encoder.dropout_op,
                encoder.dropout_op_kwargs, encoder.nonlin, encoder.nonlin_kwargs, nonlin_first))
            # built for every stage regardless of deep_supervision so that weights load either way
            seg_layers.append(encoder.conv_op(features, num_classes, 1, 1, 0, bias=True))
            features_below = features
        self.upsamplers = nn.ModuleList(upsamplers)
        self.stages = nn.ModuleList(stages)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips: List[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        """``skips`` in encoder order (bottleneck last). Returns the full-resolution logits, or with deep
        supervision a list of logits, highest resolution first (same order as UNetDecoder)."""
        x = skips[-1]
        seg_outputs = []
        last = len(self.stages) - 1
        for s in range(len(self.stages)):
            skip = skips[-(s + 2)]
            x = self.upsamplers[s](x, skip.shape[2:])
            x = self.stages[s](torch.cat((x, skip), dim=1))
            if self.deep_supervision or s == last:
                seg_outputs.append(self.seg_layers[s](x))
        seg_outputs = seg_outputs[::-1]
        return seg_outputs if self.deep_supervision else seg_outputs[0]


class DualDecoderUNet(nn.Module):
    """A plain nnU-Net U-Net (``encoder`` + ``decoder``) plus an ``aux_decoder`` fed by the same skips.

    ``forward(x)`` behaves exactly like the plain network, so nnU-Net's predictor, validation and
    ``set_deep_supervision_enabled`` work unchanged; ``forward(x, return_auxiliary=True)`` runs the encoder once and
    returns ``(main_output, aux_output)``. Setting ``inference_output = 'auxiliary'`` makes ``forward(x)`` return the
    auxiliary decoder's output instead, so nnU-Net's sliding-window predictor can produce it (uncertainty maps).
    """

    #: what forward(x) returns: 'main' (nnU-Net's prediction) or 'auxiliary' (the second decoder's output)
    inference_output: str = 'main'

    def __init__(self, unet: nn.Module, aux_decoder: InterpolationDecoder):
        super().__init__()
        if not (hasattr(unet, 'encoder') and hasattr(unet, 'decoder')):
            raise TypeError(f'DualDecoderUNet needs a network with .encoder and .decoder, '
                            f'{type(unet).__name__} has not.')
        self.encoder = unet.encoder
        self.decoder = unet.decoder
        self.aux_decoder = aux_decoder
        # keep the hints nnU-Net's pretraining/fine-tuning utilities look for on dynamic architectures
        for hint in ('key_to_encoder', 'key_to_stem', 'keys_to_in_proj'):
            if hasattr(unet, hint):
                setattr(self, hint, getattr(unet, hint))

    @property
    def deep_supervision(self) -> bool:
        return self.decoder.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        self.decoder.deep_supervision = enabled
        self.aux_decoder.deep_supervision = enabled

    def forward(self, x: torch.Tensor, return_auxiliary: bool = False):
        skips = self.encoder(x)
        if self.inference_output == 'auxiliary' and not return_auxiliary:
            return self.aux_decoder(skips)
        main_output = self.decoder(skips)
        if not return_auxiliary:
            return main_output
        return main_output, self.aux_decoder(skips)


def build_dual_decoder_network(plans_manager: PlansManager,
                               configuration_manager: ConfigurationManager,
                               num_input_channels: int,
                               num_output_channels: int,
                               enable_deep_supervision: bool = True,
                               aux_convs_per_stage: Optional[int] = None,
                               aux_width: float = 1.0) -> DualDecoderUNet:
    """Build the plain network exactly as nnUNetTrainer.build_network_architecture does, then attach an
    interpolation decoder initialised like the plain network. By default it mirrors the main decoder (conv counts
    and widths); aux_convs_per_stage / aux_width make it lighter."""
    unet = get_network_from_plans(
        configuration_manager.network_arch_class_name,
        configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        num_input_channels,
        num_output_channels,
        allow_init=True,
        deep_supervision=enable_deep_supervision)
    if not (hasattr(unet, 'encoder') and hasattr(unet, 'decoder')):
        raise TypeError(f'The plans network class {configuration_manager.network_arch_class_name} '
                        f'({type(unet).__name__}) has no .encoder/.decoder, so no second decoder can share its '
                        f'encoder. Use plans whose network is PlainConvUNet or ResidualEncoderUNet (nnUNetPlans, '
                        f'nnUNetResEnc*Plans).')
    n_conv_per_stage_decoder = configuration_manager.network_arch_init_kwargs.get('n_conv_per_stage_decoder')
    if n_conv_per_stage_decoder is None:
        raise KeyError(f"The plans configuration's architecture.arch_kwargs lacks 'n_conv_per_stage_decoder' (network "
                       f"{configuration_manager.network_arch_class_name}); the auxiliary decoder copies it from the "
                       f"main decoder. Add it to plans.json (one int per decoder stage).")
    if aux_convs_per_stage is not None:
        n_conv_per_stage_decoder = [aux_convs_per_stage] * (len(unet.encoder.output_channels) - 1)
    aux_decoder = InterpolationDecoder(
        unet.encoder, num_output_channels, n_conv_per_stage_decoder, enable_deep_supervision,
        nonlin_first=bool(configuration_manager.network_arch_init_kwargs.get('nonlin_first', False)),
        width=aux_width)
    aux_decoder.apply(unet.initialize if hasattr(unet, 'initialize') else InitWeights_He(1e-2))
    return DualDecoderUNet(unet, aux_decoder)


def strip_auxiliary_decoder(state_dict: dict) -> dict:
    """The state dict without ``aux_decoder.*``: what the plain nnU-Net network loads with strict=True."""
    stripped = OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith(AUX_DECODER_PREFIX))
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:  # per-module versions torch uses when loading; drop the aux entries with the weights
        aux_module_name = AUX_DECODER_PREFIX[:-1]
        stripped._metadata = type(metadata)((k, v) for k, v in metadata.items()
                                            if k != aux_module_name and not k.startswith(AUX_DECODER_PREFIX))
    return stripped
