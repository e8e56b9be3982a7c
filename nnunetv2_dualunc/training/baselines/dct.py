"""Deep co-training (DCT-Seg: Peng, Estrada, Pedersoli & Desrosiers, Pattern Recognition 2020, after Qiao et al.,
ECCV 2018) as an nnU-Net trainer: two networks of the plans' architecture learn from the labelled cases, agree on the
unlabelled images (Jensen-Shannon divergence), and each predicts the other's clean output on the other's adversarial
examples, which keeps them two views instead of one network twice (method/co_training.py).

Choices, from the authors' code (jizongFox/Deep-Co-Training-for-Semi-Supervised-Image-Segmentation, the final
``CoTrainer``; none of it copied):
- two networks; each has its own labelled batch of the same labelled cases (their separately shuffled loaders: here
  the peer draws a second batch from nnU-Net's loader) and both share the step's unlabelled batch; one optimizer
  step over both (nnU-Net's SGD and schedule, a parameter group per network, each clipped on its own);
- agreement: the voxel-wise JSD of the two softmaxes on the unlabelled batch, mean over voxels, gradient to both;
  weight 0.5 after a sigmoid ramp-up over the first 40 % of the epochs (theirs: 50 of 120 epochs);
- view difference: fast-gradient-sign examples of one network's batch against its own argmax (true labels for a
  labelled batch), the other network trained to match the attacked network's clean softmax on them (KL), both
  directions averaged; weight 0.05, ramped from 1/6 to 40 % of the epochs (theirs: epochs 20 to 50 of 120), no
  attack while the weight is 0. They attack both the labelled and the unlabelled batch in every step; here each
  network attacks one of its two, drawn at random per network and step (their earlier code's choice), which halves
  the attack's cost;
- epsilon 0.1 in nnU-Net's z-scored intensities, a tenth of the image's standard deviation (theirs: 0.03 on images
  in [0, 1] whose standard deviation is about 0.3), no clamping: z-scored images have no fixed range;
- the deep-supervision heads take nnU-Net's loss on the labelled batches; agreement and attack use the
  full-resolution output (their networks have one);
- from scratch the two networks start from different random initialisations; in a warm start the peer starts as a
  copy of the loaded model and the two labelled batches set them apart;
- exported and validated: the first network (nnU-Net's predictor loads one network; they report both networks and
  their soft ensemble). The peer's weights are kept in nnU-Net's checkpoint, so ``--c`` resumes both;
- recipe-only twin: the second batch from the labelled cases, attacked against their true labels, the same terms.

Cost: per step two networks see three batches each (their labelled one, the second batch, the other's adversarial
examples) plus one attack pass each, and both graphs live until the one backward pass: about six times
nnUNetTrainer's activation memory on a GPU.
"""
import torch
from torch import nn

from nnunetv2_dualunc.method.co_training import adversarial_kl, fgsm_example, jensen_shannon
from nnunetv2_dualunc.method.consistency import sigmoid_rampup
from nnunetv2_dualunc.training.baselines.online import nnUNetTrainerOnlineSemiSupervised
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.semi_supervised import _as_list

PEER_CHECKPOINT_KEY = "co_training_peer_weights"


class nnUNetTrainerDeepCoTraining(nnUNetTrainerOnlineSemiSupervised):
    unsupervised_loss_weight = 0.5  # the agreement (JSD) term's
    rampup_share = 0.4
    adversarial_loss_weight: float = 0.05
    adversarial_rampup: tuple = (1 / 6, 0.4)  # shares of the epochs: the term starts, reaches its full weight
    adversarial_epsilon: float = 0.1
    labelled_attack_probability: float = 0.5
    peer_starts_as_copy: bool = False  # True in the warm start: the peer begins as the loaded model
    peer_network: nn.Module = None
    _peer_started: bool = False

    def configure_optimizers(self):
        optimizer, scheduler = super().configure_optimizers()
        self.peer_network = self.build_network_architecture(
            self.plans_manager, self.configuration_manager, self.num_input_channels,
            self.label_manager.num_segmentation_heads, self.enable_deep_supervision).to(self.device)
        optimizer.add_param_group({"params": list(self.peer_network.parameters())})
        return optimizer, scheduler

    def trained_networks(self):
        return [self.network, self.peer_network]

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self.peer_network.train()

    def adversarial_weight(self) -> float:
        start, full = self.adversarial_rampup
        progress = self.training_progress()
        if progress < start:
            return 0.0
        return self.adversarial_loss_weight * sigmoid_rampup((progress - start) / max(full - start, 1e-8))

    def train_step(self, batch: dict) -> dict:
        """Both networks: nnU-Net's loss on their own labelled batch, the JSD on the shared second batch, and each
        on the other's adversarial examples, in one forward pass per network and one optimizer step."""
        self._start_peer()
        networks = (self.network, self.peer_network)
        labelled = (self._to_device(batch), self._to_device(next(self.dataloader_train)))
        data_u, target_u = self._to_device(next(self.dataloader_unlabelled))
        n_labelled, n_second = labelled[0][0].shape[0], data_u.shape[0]
        adversarial_weight = self.adversarial_weight()
        # attacks[k]: network k's adversarial examples and its clean logits on them, for the other network
        attacks = [self._attack(network, data, target, data_u, target_u)
                   for network, (data, target) in zip(networks, labelled)] if adversarial_weight > 0 else None

        self.optimizer.zero_grad(set_to_none=True)
        with self.training_autocast():
            outputs = []
            for k, (network, (data, _)) in enumerate(zip(networks, labelled)):
                inputs = [data, data_u] + ([attacks[1 - k][0]] if attacks else [])
                outputs.append(_as_list(network(torch.cat(inputs))))
            loss = sum(self._supervised_loss([scale[:n_labelled] for scale in output], target)
                       for output, (_, target) in zip(outputs, labelled))
            second = [torch.softmax(output[0][n_labelled:n_labelled + n_second].float(), 1) for output in outputs]
            loss_u = jensen_shannon(second).mean()
            loss = loss + self.unsupervised_weight() * loss_u
            if attacks:
                loss_adversarial = sum(adversarial_kl(output[0][n_labelled + n_second:], attacks[1 - k][1])
                                       for k, output in enumerate(outputs)) / 2
                loss = loss + adversarial_weight * loss_adversarial
                loss_u = loss_u + loss_adversarial
        self._apply_gradients(loss)
        return {"loss": loss.detach().cpu().numpy(), "unsupervised_losses": loss_u.detach()}

    def _attack(self, network: nn.Module, data: torch.Tensor, target: list, data_u: torch.Tensor,
                target_u: list) -> tuple:
        """(adversarial examples, clean logits) of the network's labelled batch against its labels, or of the second
        batch against the network's own argmax (its true labels when the second batch is labelled)."""
        if torch.rand(()) < self.labelled_attack_probability:
            images, labels = data, target[0]
        else:
            images, labels = data_u, (target_u[0] if self.second_batch_is_labelled else None)
        with self.training_autocast():
            return fgsm_example(network, images, labels, self.adversarial_epsilon, self.label_manager.ignore_label)

    def _start_peer(self) -> None:
        """In a warm start, the peer becomes a copy of the loaded model before the first step (not after --c)."""
        if self._peer_started:
            return
        if self.peer_starts_as_copy:
            self.peer_network.load_state_dict(self._network_module().state_dict())
            self.print_to_log_file("deep co-training: the second network starts as a copy of the loaded model")
        self._peer_started = True

    def extra_checkpoint_state(self) -> dict:
        return dict(super().extra_checkpoint_state(), **{PEER_CHECKPOINT_KEY: self.peer_network.state_dict()})

    def restore_extra_checkpoint_state(self, checkpoint: dict) -> None:
        super().restore_extra_checkpoint_state(checkpoint)
        if PEER_CHECKPOINT_KEY in checkpoint:
            self.peer_network.load_state_dict(checkpoint[PEER_CHECKPOINT_KEY])
            self._peer_started = True
            self.print_to_log_file("deep co-training: second network restored from the checkpoint")


class nnUNetTrainerDeepCoTrainingWarmStart(nnUNetTrainerContinued, nnUNetTrainerDeepCoTraining):
    """Deep co-training continuing this fold's nnUNetTrainer model (the warm-start protocol's epochs and phases)."""
    peer_starts_as_copy = True
