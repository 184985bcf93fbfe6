"""The masked autoencoder behind ``mae`` (a pre-trainer: ``ferbench pretrain --method mae``)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ferbench.classifier import MODEL_SLOT
from ferbench.errors import FerbenchError
from ferbench.method import Batch, DataInfo, Method, OptimizerSlot, StepContext
from ferbench.optim import optimizer_slot
from ferbench_plugins.common.image_grid import GRID_COLUMNS, denormalize, image_grid, rgb_statistics
from ferbench_plugins.common.mae import (MAEDecoder, build_encoder, encode_visible, masked_mse, patchify,
                                         pixel_targets, unpatchify)

#: Batch size at which ``optim.blr`` is the learning rate (MAE's linear scaling rule).
BLR_BATCH = 256


def scaled_lr(optim_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any]) -> float:
    """``optim.lr`` when positive, else MAE's rule ``optim.blr * effective batch / 256`` with the effective
    batch ``train.batch_size * train.grad_accum_steps`` (one process)."""
    if optim_cfg["lr"] > 0:
        return float(optim_cfg["lr"])
    return optim_cfg["blr"] * train_cfg["batch_size"] * train_cfg["grad_accum_steps"] / BLR_BATCH


class MaskedAutoencoder(Method):
    """ViT encoder on the visible quarter of the patches, light decoder predicting the removed ones;
    loss = mean squared error on the removed patches only, against per-patch normalised pixels
    (``model.norm_pix_loss``). Kept weights: encoder + decoder in MAE layout (``export_state_dict``)."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        model = config["model"]
        self.patch_size = model["patch_size"]
        self.mask_ratio = float(model["mask_ratio"])
        self.norm_pix_loss = bool(model["norm_pix_loss"])
        if not 0.0 < self.mask_ratio < 1.0:
            raise FerbenchError(f"model.mask_ratio must lie strictly between 0 and 1, got {self.mask_ratio}")
        self.encoder = build_encoder(model, info.image_size)
        num_patches = self.encoder.patch_embed.num_patches
        self.decoder = MAEDecoder(num_patches, model["embed_dim"], self.patch_size, model)

    def reconstruct(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, patch predictions ``[B, N, p*p*3]``, mask ``[B, N]``) for normalised images."""
        latent, mask, ids_restore = encode_visible(self.encoder, images, self.mask_ratio)
        pred = self.decoder(latent, ids_restore)
        loss = masked_mse(pred, pixel_targets(images, self.patch_size, self.norm_pix_loss), mask)
        return loss, pred, mask

    def configure_optimizers(self) -> dict[str, OptimizerSlot]:
        cfg = {**self.config["optim"], "lr": scaled_lr(self.config["optim"], self.config["train"])}
        return {MODEL_SLOT: optimizer_slot(self, cfg, self.info.steps_per_epoch, self.info.epochs)}

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        with ctx.autocast():
            loss, _, _ = self.reconstruct(batch.rgb)
        ctx.optimize(loss, MODEL_SLOT)
        return {"loss": loss.detach()}

    def predict(self, batch: Batch) -> torch.Tensor:
        raise FerbenchError("mae is a pre-trainer and does not classify: run it with `ferbench pretrain`, then "
                            "fine-tune a classifier from its weights (model.weights=run:<id>)")

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Encoder and decoder in facebookresearch/mae's key layout (no wrapper prefix)."""
        return {**self.encoder.state_dict(), **self.decoder.state_dict()}

    @torch.no_grad()
    def images(self, batch: Batch) -> dict[str, np.ndarray]:
        """Rows: original, masked input (removed patches grey), reconstruction with the visible patches
        pasted back. With ``norm_pix_loss`` the predicted patches are de-standardised with the original
        patch's mean and variance, as MAE's visualisations do."""
        images = batch.rgb[:GRID_COLUMNS]
        _, pred, mask = self.reconstruct(images)
        target = patchify(images.float(), self.patch_size)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            pred = pred.float() * (var + 1e-6) ** 0.5 + mean
        removed = mask[..., None]
        stats = rgb_statistics(self.info, self.config)
        masked = denormalize(unpatchify(target * (1 - removed), self.patch_size), *stats)
        masked = torch.where(unpatchify(removed.expand_as(target), self.patch_size) > 0, 0.5, masked)
        pasted = unpatchify(pred.float() * removed + target * (1 - removed), self.patch_size)
        return {"reconstruction": image_grid([denormalize(images, *stats), masked, denormalize(pasted, *stats)])}
