"""The Poker Face Vision Transformer behind ``pfvit`` (see the plugin's docstring for the choices)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ferbench.classifier import MODEL_SLOT, ClassifierMethod
from ferbench.emotions import NEUTRAL
from ferbench.errors import FerbenchError, UsageError
from ferbench.losses import LossInput
from ferbench.method import Batch, DataInfo, OptimizerSlot, StepContext
from ferbench.optim import optimizer_slot
from ferbench.weights import load_weights, read_state_dict
from ferbench_plugins.common.image_grid import GRID_COLUMNS, denormalize, image_grid, rgb_statistics
from ferbench_plugins.common.mae import build_encoder, encode_visible, patchify, split_mae_state, unpatchify

from .components import Discriminator, Generator, Separator, separate
from .face_features import FACE_ADAPTERS, FrozenFaceFeatures
from .losses import (abs_cosine, discrimination_loss, discriminator_targets, generator_adversarial_loss,
                     orthogonality, reconstruction_loss)

log = logging.getLogger(__name__)

#: Optimizer slot of the discriminator.
DISC_SLOT = "disc"
#: State-dict prefix of the frozen feature network (not kept with a run's weights).
FACE_PREFIX = "face."
#: Where to get FaceNet's VGGFace2 weights (not on the Hugging Face Hub).
FACENET_WEIGHTS = ("https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
                   "20180402-114759-vggface2.pt")


def neutral_index(classes: Sequence[str]) -> int:
    """Index of the neutral class c (the poker face's class); PF-ViT cannot run without one."""
    if NEUTRAL not in classes:
        raise UsageError(f"pfvit needs a {NEUTRAL!r} class (the poker face is the neutral expression), but this "
                         f"dataset's classes are {', '.join(classes)}; choose a dataset or class set with neutral")
    return list(classes).index(NEUTRAL)


@dataclass
class Separated:
    """Encoder tokens z and their split (eq. 2); ``ids_restore`` when the encoder saw a random subset of
    patches (Multi-Task MAE), else None."""

    tokens: torch.Tensor
    emotion: torch.Tensor
    poker: torch.Tensor
    ids_restore: torch.Tensor | None

    def rows(self, part: slice) -> Separated:
        """The same tensors for a slice of the batch."""
        ids = None if self.ids_restore is None else self.ids_restore[part]
        return Separated(self.tokens[part], self.emotion[part], self.poker[part], ids)


class PFViT(ClassifierMethod):
    """E (MAE ViT) -> S (SE mask) -> C on V_e's [CLS] token; G and D train alongside and are not used to
    predict. ``evaluated_modules()`` names the modules a prediction uses (E, S, C)."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        model = config["model"]
        self.terms = config["pfvit"]
        self.neutral = neutral_index(info.classes)
        self.variant = model["variant"]
        self.patch_size = model["patch_size"]
        self.mask_ratios = {True: float(model["train_mask_ratio"]), False: float(model["test_mask_ratio"])}
        if self.variant == "multitask-mae" and not all(0.0 <= r < 1.0 for r in self.mask_ratios.values()):
            raise UsageError(f"model.train_mask_ratio and model.test_mask_ratio must lie in [0, 1), got "
                             f"{self.mask_ratios[True]} and {self.mask_ratios[False]}")
        dim = model["embed_dim"]
        self.encoder = build_encoder(model, info.image_size, model["drop_path_rate"])
        num_patches = self.encoder.patch_embed.num_patches
        self.separator = Separator(dim, model["se_reduction"], per_token=model["separator_mask"] == "token")
        self.classifier = nn.Linear(dim, info.num_classes)
        self.loss.set_feature_dim(dim)
        self.generator = Generator(num_patches, dim, self.patch_size, model,
                                   cross_fusion=model["cross_fusion"] and self.variant == "pfvit")
        self.discriminator = Discriminator(info.image_size, self.patch_size, dim, info.num_classes + 1, model)
        self.rgb_stats = rgb_statistics(info, config)
        self.face = self._face_features(model)
        self._load_pretrained(model)

    # --- construction -------------------------------------------------------------------------
    def _load_pretrained(self, model: dict[str, Any]) -> None:
        """E from ``model.weights`` (MAE layout or timm ViT); G's decoder from ``model.decoder_weights`` or,
        when that is empty, from the decoder inside ``model.weights``; D starts as a copy of G's decoder with
        E's patch embedding (PF-ViT Fig. 2: "G and D have the same initial weights")."""
        main = self.info.weights.get("model.weights")
        main_state = read_state_dict(main.path) if main is not None else None
        if main_state is not None:
            load_weights(self.encoder, main_state, adapter="mae-encoder")
        decoder = self._decoder_state(main_state)
        if decoder:
            load_weights(self.generator.decoder, decoder, adapter="exact")
        elif main_state is not None:
            log.warning("model.weights %s hold no MAE decoder: the generator and discriminator start from random "
                        "weights (name decoder weights with model.decoder_weights)", model["weights"])
        self.discriminator.copy_from(self.encoder, self.generator.decoder)
        if model["fusion_init"] == "copy":
            self.generator.start_fusion_from_decoder()

    def _face_features(self, model: dict[str, Any]) -> FrozenFaceFeatures | None:
        """The frozen feature network ``model.face_net`` with its weights ``model.face_weights`` (required)."""
        kind = model["face_net"]
        if kind == "none":
            return None
        weights = self.info.weights.get("model.face_weights")
        if weights is None:
            hint = (f"download FaceNet's VGGFace2 weights ({FACENET_WEIGHTS}) and pass the file's path"
                    if kind == "inception_resnet_v1" else f"e.g. timm:{kind}.tv_in1k")
            raise UsageError(f"model.face_net={kind} is a frozen pretrained network and model.face_weights is empty: "
                             f"{hint}, or set model.face_net=none")
        face = FrozenFaceFeatures(kind, *self.rgb_stats)
        load_weights(face.net, weights, adapter=FACE_ADAPTERS[kind])
        return face

    def _decoder_state(self, main_state: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """The MAE decoder tensors G starts from: ``model.decoder_weights``'s, else those in ``model.weights``."""
        ref = self.info.weights.get("model.decoder_weights")
        if ref is None:
            return split_mae_state(main_state)[1] if main_state is not None else {}
        decoder = split_mae_state(read_state_dict(ref.path))[1]
        if not decoder:
            raise UsageError(f"model.decoder_weights={ref.ref} holds no MAE decoder (no mask_token or decoder_* "
                             "tensors); name an MAE checkpoint saved with its decoder")
        return decoder

    def extra_slots(self) -> dict[str, OptimizerSlot]:
        """D's Adam (``disc_optim`` over ``optim``: its own rate and betas, the same schedule)."""
        cfg = {**self.config["optim"], **self.config["disc_optim"]}
        return {DISC_SLOT: optimizer_slot(self.discriminator, cfg, self.info.steps_per_epoch, self.info.epochs)}

    def evaluated_modules(self) -> tuple[nn.Module, ...]:
        """The modules a prediction runs through (E, S, C); G, D and the frozen feature network only serve
        training."""
        return self.encoder, self.separator, self.classifier

    def evaluated_parameters(self) -> int:
        """Parameters of :meth:`evaluated_modules` (the leaderboard's model size)."""
        return sum(p.numel() for module in self.evaluated_modules() for p in module.parameters())

    # --- forward pieces -----------------------------------------------------------------------
    def separate(self, images: torch.Tensor) -> Separated:
        """E then S (eq. 1-2). Multi-Task MAE encodes a random ``1 - mask_ratio`` of the patches (the
        training or the test ratio, by the module's mode)."""
        if self.variant == "pfvit":
            tokens, ids_restore = self.encoder.forward_features(images), None
        else:
            tokens, _, ids_restore = encode_visible(self.encoder, images, self.mask_ratios[self.training])
        emotion, poker = separate(tokens, self.separator(tokens))
        return Separated(tokens, emotion, poker, ids_restore)

    def generate(self, sources: Sequence[torch.Tensor], ids_restore: torch.Tensor | None) -> list[torch.Tensor]:
        """G on several sets of separated tokens in one batched pass: patches ``[B, N, p*p*3]`` (normalised
        pixel space) per set."""
        tokens = torch.cat(list(sources))
        if ids_restore is None:
            patches = self.generator(tokens)
        else:
            patches = self.generator.masked(tokens, ids_restore.repeat(len(sources), 1))
        return list(patches.chunk(len(sources)))

    def discriminate(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """D's logits ``[B, K+1]`` for several batches of images, in one pass."""
        return list(self.discriminator(torch.cat(list(images))).chunk(len(images)))

    def image(self, patches: torch.Tensor) -> torch.Tensor:
        """Generated patches as images ``[B, 3, H, W]``."""
        return unpatchify(patches, self.patch_size)

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.separate(inputs["rgb"]).emotion[:, 0]

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One D update on detached fakes, then one E, S, G, C update against the updated D (the engine
        back-propagates each loss into its own slot's parameters only)."""
        batch, mix = self.loss.prepare(batch)
        first = slice(0, len(batch))
        with ctx.autocast():
            split = self.separate(torch.cat([view["rgb"] for view in batch.views]))
            cls = split.emotion[:, 0]
            emo = self.loss(LossInput(logits=self.classifier(cls), labels=batch.labels, features=cls,
                                      soft_labels=batch.soft_labels, views=len(batch.views), mix=mix))
            own = split.rows(first)
            real = batch.views[0]["rgb"]
            sources = [own.emotion + own.poker, own.poker] + ([own.emotion] if self.face is not None else [])
            generated = self.generate(sources, own.ids_restore)
            reconstruction, poker = generated[:2]
            fakes = [self.image(reconstruction), self.image(poker)]
            neutral = torch.full_like(batch.labels, self.neutral)
            fake_targets = [discriminator_targets(batch.labels, self.info.num_classes, real=False),
                            discriminator_targets(neutral, self.info.num_classes, real=False)]
            loss_d = self.discriminator_loss(real, batch.labels, fakes, fake_targets)
        ctx.optimize(loss_d, DISC_SLOT)
        with ctx.autocast():
            adv = generator_adversarial_loss(self.discriminate(fakes), fake_targets, self.terms["adversarial"])
            rec, poker_rec = reconstruction_loss(reconstruction, poker, patchify(real, self.patch_size),
                                                 batch.labels == self.neutral, self.terms["rec_distance"])
            orth = orthogonality(split.emotion, split.poker, self.terms["orth_over"])
            face_orth = (self.face_orthogonality(self.image(generated[2]), fakes[1]) if self.face is not None
                         else real.new_zeros(()))
            weights = self.terms["lambda"]
            total = (weights["emo"] * emo["loss"] + weights["rec"] * (rec + poker_rec) + weights["adv"] * adv
                     + weights["orth"] * orth + weights["face_orth"] * face_orth)
        ctx.optimize(total, MODEL_SLOT, *self.loss_slots)
        logs = {"loss": total, "emo": emo["loss"], "rec": rec, "poker": poker_rec, "adv": adv, "orth": orth,
                "face_orth": face_orth, "disc": loss_d}
        return {name: value.detach().float() for name, value in logs.items()}

    def discriminator_loss(self, real: torch.Tensor, labels: torch.Tensor, fakes: list[torch.Tensor],
                           fake_targets: list[torch.Tensor]) -> torch.Tensor:
        """Eq. 7 averaged over the three kinds of image: real x, reconstruction x_hat and poker face x_tilde
        (the generated ones detached: this loss trains D only)."""
        logits = self.discriminate([real, *(fake.detach() for fake in fakes)])
        targets = [discriminator_targets(labels, self.info.num_classes, real=True), *fake_targets]
        return torch.stack([discrimination_loss(l, t) for l, t in zip(logits, targets)]).mean()

    def face_orthogonality(self, emotion_face: torch.Tensor, poker_face: torch.Tensor) -> torch.Tensor:
        """Mean ``|cos|`` between the frozen network's features of G(V_e) and G(V_p)."""
        features = self.face(torch.cat([emotion_face, poker_face])).chunk(2)
        return abs_cosine(*features).mean()

    # --- outputs ------------------------------------------------------------------------------
    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen feature network (it is reloaded from ``model.face_weights``)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FACE_PREFIX)}

    def import_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load what :meth:`export_state_dict` kept: every tensor but the feature network's."""
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(FACE_PREFIX)]
        if missing or result.unexpected_keys:
            raise FerbenchError(f"these weights are not a pfvit export of this configuration: missing "
                                f"{missing[:4]}, unexpected {result.unexpected_keys[:4]}")

    @torch.no_grad()
    def images(self, batch: Batch) -> dict[str, np.ndarray]:
        """Rows: original, reconstruction G(V_e + V_p), poker face G(V_p), emotion G(V_e) (Fig. 3)."""
        split = self.separate(batch.rgb[:GRID_COLUMNS])
        sources = (split.emotion + split.poker, split.poker, split.emotion)
        rows = [batch.rgb[:GRID_COLUMNS], *map(self.image, self.generate(sources, split.ids_restore))]
        return {"poker_face": image_grid([denormalize(row, *self.rgb_stats) for row in rows])}
