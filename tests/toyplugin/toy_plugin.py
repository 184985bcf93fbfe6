"""A third-party plugin used by the tests: a pre-trainer, a classifier that fine-tunes from it, a loss
and a method drawing an image grid. Loaded with ``FERBENCH_PLUGINS=toy_plugin`` (this folder on PYTHONPATH)."""
from __future__ import annotations

from ferbench import hookimpl
from ferbench.specs import PRETRAINER, LossSpec, MethodSpec

SMALL = {"model": {"width": 8, "weights": ""}, "optim": {"lr": 3e-3}, "train": {"epochs": 2, "batch_size": 32},
         "data": {"image_size": 16}}


@hookimpl
def register_methods(register):
    register(MethodSpec(name="toy-pretrainer", factory="toy_models:ToyAutoencoder", kind=PRETRAINER,
                        presets={"tiny": SMALL, "paper": SMALL}, description="reconstructs its inputs"))
    register(MethodSpec(name="toy-classifier", factory="toy_models:ToyClassifier", presets={"tiny": SMALL, "paper": SMALL},
                        defaults={"loss": {"name": "ce"}}, description="a small CNN on the toy encoder"))
    register(MethodSpec(name="toy-diverging", factory="toy_models:ToyDiverging", presets={"tiny": SMALL, "paper": SMALL},
                        defaults={"loss": {"name": "ce"}}, description="the toy classifier whose logits are NaN"))


@hookimpl
def register_losses(register):
    register(LossSpec("toy-tempered-ce", "toy_models:TemperedCrossEntropy", options={"temperature": 2.0},
                      description="cross-entropy on logits divided by a temperature"))
