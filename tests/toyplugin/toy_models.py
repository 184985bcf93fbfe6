"""Models of the toy plugin (imported only when a run needs them)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ferbench.classifier import ClassifierMethod
from ferbench.losses import Loss, LossInput
from ferbench.method import Method, OptimizerSlot


def encoder(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU())


class ToyAutoencoder(Method):
    """Learns to reconstruct images; keeps only its encoder as the exported weights."""

    def __init__(self, config, info):
        super().__init__(config, info)
        self.encoder = encoder(config["model"]["width"])
        self.decoder = nn.Conv2d(config["model"]["width"], 3, 1)

    def configure_optimizers(self):
        return {"model": OptimizerSlot(torch.optim.Adam(self.parameters(), lr=self.config["optim"]["lr"]))}

    def training_step(self, batch, ctx):
        loss = nn.functional.mse_loss(self.decoder(self.encoder(batch.rgb)), batch.rgb)
        ctx.optimize(loss)
        return {"loss": loss.detach()}

    def images(self, batch):
        rows = [batch.rgb[:4], self.decoder(self.encoder(batch.rgb[:4]))]
        grid = torch.cat([torch.cat(list(row), dim=2) for row in rows], dim=1)  # [3, 2H, 4W]
        scaled = (grid - grid.min()) / (grid.max() - grid.min() + 1e-6)
        return {"reconstruction": (scaled.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)}

    def export_state_dict(self):
        return {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}


class ToyClassifier(ClassifierMethod):
    """The toy encoder, pooled, and a linear head; starts from a pre-trainer's encoder when given weights."""

    def __init__(self, config, info):
        super().__init__(config, info)
        width = config["model"]["width"]
        self.encoder = encoder(width)
        self.head = nn.Linear(width, info.num_classes)
        if "model.weights" in info.weights:
            from ferbench.weights import load_weights, read_state_dict

            state = read_state_dict(info.weights["model.weights"].path)
            load_weights(self.encoder, {k[len("encoder."):]: v for k, v in state.items()}, min_fraction=1.0)

    def features(self, inputs):
        return self.encoder(inputs["rgb"]).mean(dim=(2, 3))

    def classify(self, features):
        return self.head(features)


class ToyDiverging(ToyClassifier):
    """A model that diverged: its logits are NaN (what a too large learning rate ends in)."""

    def classify(self, features):
        return self.head(features) * float("nan")


class TemperedCrossEntropy(Loss):
    def __init__(self, options, info):
        super().__init__()
        self.temperature = options["temperature"]

    def forward(self, inp: LossInput):
        return {"loss": nn.functional.cross_entropy(inp.logits / self.temperature, inp.repeat(inp.labels))}
