"""A plugin whose names are markup: a method, a dataset's class names and sample ids that try to inject
HTML, script and template syntax into the leaderboard. Loaded with ``FERBENCH_PLUGINS=hostile_plugin``
(this folder on PYTHONPATH); the leaderboard must show every one of them as text."""
from __future__ import annotations

import dataclasses

from ferbench import hookimpl
from ferbench.specs import DatasetSpec, MethodSpec

SCRIPT = '<script>window.__owned = "script"</script>'
IMAGE = '"><img src=x onerror="window.__owned = \'img\'">'
TEMPLATE = "{{7*7}}"
#: every hostile string, as a test looks for it
HOSTILE = (SCRIPT, IMAGE, TEMPLATE)
METHOD = f"toy{SCRIPT}{IMAGE}{TEMPLATE}"
CLASSES = (SCRIPT, IMAGE, TEMPLATE, "neutral", "happiness", "sadness", "surprise")
SMALL = {"model": {"width": 8, "weights": "", "note": ""}, "optim": {"lr": 3e-3},
         "train": {"epochs": 1, "batch_size": 64}, "data": {"image_size": 16}}


def load(data_root, options):
    """synthfer with hostile class names and, for every tenth sample, a hostile sample id."""
    from ferbench_plugins.synthfer.dataset import load as load_synthfer

    data = load_synthfer(data_root, options)
    ids = [f"{sid}{HOSTILE[i // 10 % 3]}" if i % 10 == 0 else sid for i, sid in enumerate(data.ids.tolist())]
    return dataclasses.replace(data, classes=CLASSES, ids=ids)


@hookimpl
def register_methods(register):
    register(MethodSpec(name=METHOD, factory="toy_models:ToyClassifier", presets={"tiny": SMALL, "paper": SMALL},
                        defaults={"loss": {"name": "ce"}}, description=f"a toy classifier named {SCRIPT}"))


@hookimpl
def register_datasets(register):
    from ferbench_plugins.synthfer import PROTOCOLS

    register(DatasetSpec(name="hostile-synth", loader="hostile_plugin:load", classes=CLASSES, protocols=PROTOCOLS,
                         default_protocol="official", modalities=("rgb", "depth"), needs_data_root=False,
                         options={"samples": 4000, "subjects": 48, "seed": 0, "label_noise": 0.03, "difficulty": 0.5},
                         description=f"synthfer renamed {IMAGE}"))
