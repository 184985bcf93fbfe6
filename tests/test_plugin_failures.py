"""Issue 9's case table: a broken plugin gives one line naming it, or a correct result; never a
traceback and never a silently wrong run. Each plugin is generated under tmp_path and loaded as a
user would: through an entry point of an installed distribution, or through FERBENCH_PLUGINS."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import ferbench, ferbench_json

#: A small CNN whose training_step reports ``train_loss`` (logged as is, not as ``train_train_loss``).
MODELS = '''
import torch
from torch import nn
from ferbench.method import Method, OptimizerSlot


class Net(Method):
    def __init__(self, config, info):
        super().__init__(config, info)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, info.num_classes))

    def configure_optimizers(self):
        return {"model": OptimizerSlot(torch.optim.Adam(self.parameters(), lr=1e-2))}

    def predict(self, batch):
        return self.net(batch.rgb)

    def training_step(self, batch, ctx):
        loss = nn.functional.cross_entropy(self.predict(batch), batch.labels)
        ctx.optimize(loss)
        return {"train_loss": loss.detach()}
'''

#: Registers method ``{name}-net`` (factory ``{factory}``), for the plugins below.
METHOD = '''
from ferbench import hookimpl
from ferbench.specs import MethodSpec

SMALL = {{"train": {{"epochs": 2, "batch_size": 32}}, "data": {{"image_size": 16}}}}


@hookimpl
def register_methods(register):
    register(MethodSpec("{name}-net", "{factory}", presets={{"tiny": SMALL, "paper": SMALL}}))
'''

#: A short synthfer run of a generated method.
SMALL_RUN = ["-d", "synthfer", "--protocol", "official", "--preset", "tiny", "--set", "dataset.samples=96",
             "--set", "dataset.subjects=10", "--no-progress"]


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


def with_plugins(env: dict[str, str], folder: Path, *modules: str) -> dict[str, str]:
    """``env`` loading ``modules`` from ``folder`` through FERBENCH_PLUGINS."""
    return {**env, "PYTHONPATH": str(folder), "FERBENCH_PLUGINS": ",".join(modules)}


def installed(env: dict[str, str], folder: Path, module: str, distribution: str, version: str) -> dict[str, str]:
    """``env`` in which ``module`` is the ``ferbench`` entry point of an installed distribution."""
    info = folder / f"{distribution.replace('-', '_')}-{version}.dist-info"
    write(info, {"METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n",
                 "entry_points.txt": f"[ferbench]\n{module} = {module}\n"})
    return {**env, "PYTHONPATH": str(folder)}


def error_line(result) -> str:
    """The final ``ferbench: error:`` line of a failed command: exit 2 and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ferbench: error:"), result.stderr
    return last


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("ferbench: warning:")]


# --- a plugin that cannot load ---------------------------------------------------------------------

BROKEN = {
    "import": "raise ZeroDivisionError('division by zero in the plugin')\n",
    "register_methods": METHOD.format(name="half", factory="half_models:Net")
    + "\n\n@hookimpl\ndef register_metrics(register):\n    raise RuntimeError('metrics table missing')\n",
    "hooks": "from ferbench import hookimpl\n\n\n@hookimpl\ndef on_run_started(run):\n    pass\n",
    "arguments": "from ferbench import hookimpl\n\n\n@hookimpl\ndef on_run_start(run, tracker):\n    pass\n",
}
EXPECTED = {"import": "ZeroDivisionError: division by zero in the plugin",
            "register_methods": "(register_metrics): RuntimeError: metrics table missing",
            "hooks": "hook 'on_run_started' matches no ferbench hook (did you mean 'on_run_start'?)",
            "arguments": "PluginValidationError: Plugin 'bad_plugin' for hook 'on_run_start' hookimpl definition: "
                         "on_run_start(run, tracker) Argument(s) {'tracker'} are declared in the hookimpl but can "
                         "not be found in the hookspec"}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_listed_in_one_line_and_ferbench_goes_on(case: str, fb_env: dict[str, str],
                                                                     tmp_path: Path) -> None:
    write(tmp_path, {"bad_plugin.py": BROKEN[case]})
    env = installed(fb_env, tmp_path, "bad_plugin", "ferbench-bad", "1.2")

    listing = ferbench("plugins", env=env)
    assert "Traceback" not in listing.stderr
    (warning,) = warnings_of(listing)
    assert "plugin 'bad_plugin' (ferbench-bad 1.2) is broken" in warning and EXPECTED[case] in warning
    assert "bad_plugin  [ferbench-bad 1.2]  module bad_plugin  BROKEN" in listing.stdout
    assert "vit_baseline  [ferbench" in listing.stdout  # the others still work
    (entry,) = [p for p in ferbench_json("plugins", env=env) if p["name"] == "bad_plugin"]
    assert entry["status"] == "broken" and EXPECTED[case] in entry["error"] and entry["provides"]["methods"] == []
    assert "vit-baseline" in ferbench("methods", env=env).stdout

    debug = ferbench("plugins", env={**env, "FERBENCH_DEBUG": "1"})
    assert ("Traceback" in debug.stderr) == (case in ("import", "register_methods", "arguments"))


def test_a_run_that_needs_a_broken_plugin_fails_with_its_line(fb_env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path, {"bad_plugin.py": BROKEN["register_methods"]})
    env = installed(fb_env, tmp_path, "bad_plugin", "ferbench-bad", "1.2")
    line = error_line(ferbench("run", "-m", "half-net", *SMALL_RUN, env=env, check=False))
    assert ("method 'half-net' comes from a broken plugin: plugin 'bad_plugin' (ferbench-bad 1.2) is broken "
            "and was left out (register_metrics): RuntimeError: metrics table missing") in line
    write(tmp_path, {"bad_plugin.py": BROKEN["import"]})
    line = error_line(ferbench("run", "-m", "half-net", *SMALL_RUN, env=env, check=False))
    assert "unknown method 'half-net'" in line and "plugin 'bad_plugin' (ferbench-bad 1.2) is broken" in line


# --- implementation paths --------------------------------------------------------------------------

@pytest.mark.parametrize(("factory", "message"), [
    ("absent_models:Net", "cannot import module 'absent_models' of 'absent_models:Net': ModuleNotFoundError"),
    ("path_models:Nett", "module 'path_models' has no attribute 'Nett' (implementation path "
                         "'path_models:Nett'); did you mean path_models:Net?"),
])
def test_a_bad_factory_path_names_the_plugin_and_the_path(factory: str, message: str, fb_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    write(tmp_path, {"path_plugin.py": METHOD.format(name="path", factory=factory), "path_models.py": MODELS})
    env = with_plugins(fb_env, tmp_path, "path_plugin")
    line = error_line(ferbench("run", "-m", "path-net", *SMALL_RUN, env=env, check=False))
    assert "plugin 'path_plugin' (module path_plugin), method 'path-net': " + message in line


# --- a dataset that breaks its contract ------------------------------------------------------------

DATASET = '''
import numpy as np
from ferbench import hookimpl
from ferbench.data import FERData
from ferbench.specs import DatasetSpec, ProtocolSpec

CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
FAULTS = ("none", "label_7", "label_minus_1", "float_labels", "float_pixels", "wrong_size", "one_channel",
          "fewer_rows", "duplicate_ids")


def load(root, options):
    fault, n = options["fault"], 70
    labels = np.arange(n) % 7
    labels = {"label_7": np.where(labels == 3, 7, labels), "label_minus_1": np.where(labels == 3, -1, labels),
              "float_labels": labels + 0.5}.get(fault, labels)
    ids = [f"img{i % 60 if fault == 'duplicate_ids' else i}.png" for i in range(n)]

    def load_pixels(size):
        gray = (np.arange(n)[:, None, None, None] % 7 * 30 + np.zeros((1, size, size, 1))).astype(np.uint8)
        rgb = np.repeat(gray, 3, axis=3)
        return {"rgb": {"float_pixels": rgb.astype(np.float32) / 255, "wrong_size": rgb[:, :8, :8],
                        "one_channel": gray, "fewer_rows": rgb[:-3]}.get(fault, rgb)}

    return FERData(classes=CLASSES, ids=ids, labels=labels, load_pixels=load_pixels,
                   subjects=[str(i % 10) for i in range(n)])


@hookimpl
def register_datasets(register):
    register(DatasetSpec("faulty", "faulty_data:load", CLASSES, {"kfold": ProtocolSpec("kfold", "kfold", folds=2)},
                         "kfold", needs_data_root=False, options={"fault": "none"},
                         option_choices={"fault": FAULTS}))
'''

TABLE_FAULTS = {
    "label_7": "10 label(s) outside 0..6 for the 7 classes (neutral, happiness, surprise, sadness, anger, "
               "disgust, fear): 'img3.png': 7, 'img10.png': 7, 'img17.png': 7, ...; a label indexes FERData.classes",
    "label_minus_1": "10 label(s) outside 0..6 for the 7 classes",
    "float_labels": "labels must be integer class indices; got 0.5, 1.5, 2.5, ...",
    "duplicate_ids": "10 sample id(s) occur more than once ('img0.png', 'img1.png', 'img2.png', ...)",
}
PIXEL_FAULTS = {
    "float_pixels": "rgb pixels are float32; return uint8 values 0..255 (scale [0, 1] floats: "
                    "(x * 255).round().astype(np.uint8))",
    "wrong_size": "rgb pixels are 8x8 but 32x32 (data.image_size) was asked for; resize to the requested size",
    "one_channel": "rgb pixels have 1 channel(s); rgb needs 3",
    "fewer_rows": "rgb pixels have 67 rows but the table has 70",
}
WHERE = "plugin 'faulty_data' (module faulty_data), dataset 'faulty': "


@pytest.fixture
def faulty_env(fb_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    write(tmp_path, {"faulty_data.py": DATASET})
    return with_plugins(fb_env, tmp_path, "faulty_data")


@pytest.mark.parametrize("fault", sorted(TABLE_FAULTS))
def test_data_check_reports_a_broken_table_naming_the_plugin(fault: str, faulty_env: dict[str, str]) -> None:
    result = ferbench("data", "check", "-d", "faulty", "--set", f"dataset.fault={fault}", env=faulty_env, check=False)
    assert WHERE + TABLE_FAULTS[fault] in error_line(result)


@pytest.mark.parametrize("fault", sorted(PIXEL_FAULTS))
def test_plugins_check_reports_broken_pixels_naming_the_plugin(fault: str, faulty_env: dict[str, str]) -> None:
    result = ferbench("plugins", "check", "faulty", "--set", f"dataset.fault={fault}", env=faulty_env, check=False)
    assert result.stdout.startswith(f"failed  dataset faulty: {WHERE}{PIXEL_FAULTS[fault]}")
    assert "1 of 1 check(s) failed" in error_line(result)


def test_a_sound_dataset_passes_the_check(faulty_env: dict[str, str]) -> None:
    (result,) = ferbench_json("plugins", "check", "faulty", env=faulty_env)
    assert result["status"] == "ok" and "70 samples, 7 classes, rgb 32x32x3, 0 unreadable" in result["detail"]


def test_a_run_on_float_pixels_stops_before_training(faulty_env: dict[str, str], tmp_path: Path) -> None:
    """The case that used to train on [0, 1] pixels as if they were 0..255 and rank a chance score."""
    write(tmp_path, {"net_plugin.py": METHOD.format(name="plain", factory="net_models:Net"), "net_models.py": MODELS})
    env = {**faulty_env, "FERBENCH_PLUGINS": "faulty_data,net_plugin"}
    result = ferbench("run", "-m", "plain-net", "-d", "faulty", "--preset", "tiny", "--set", "dataset.fault=float_pixels",
                      env=env, check=False)
    assert WHERE + "rgb pixels are float32; return uint8" in error_line(result)
    assert not Path(env["FERBENCH_DB"]).exists()  # nothing trained, nothing recorded


# --- observers and metrics -------------------------------------------------------------------------

TRACKER = '''
import json, os
from ferbench import hookimpl


def log(event, **fields):
    with open(os.environ["TRACKER_LOG"], "a") as out:
        out.write(json.dumps({"event": event, **fields}) + "\\n")


@hookimpl
def on_run_start(run):
    log("run_start", run_id=run.run_id)


@hookimpl
def on_epoch_end(run, fold, epoch, metrics):
    log("epoch_end", epoch=epoch, metrics=sorted(metrics))


@hookimpl
def on_fold_end(run, fold, metrics):
    log("fold_end", metrics=sorted(metrics))


@hookimpl
def on_run_end(run, status, summary):
    log("run_end", status=status)
'''

FAILING_OBSERVER = '''
from ferbench import hookimpl


@hookimpl
def on_run_start(run):
    raise ConnectionError("tracker server unreachable")


@hookimpl
def on_epoch_end(run, fold, epoch, metrics):
    raise KeyError("loss")


@hookimpl
def on_run_end(run, status, summary):
    raise RuntimeError("upload failed")
'''

METRICS = '''
import numpy as np
from ferbench import hookimpl
from ferbench.specs import MetricSpec


def kappa(labels, predictions, probabilities, num_classes):
    observed = np.mean(labels == predictions)
    expected = sum(np.mean(labels == k) * np.mean(predictions == k) for k in range(num_classes))
    return (observed - expected) / (1 - expected)


def always_nan(labels, predictions, probabilities, num_classes):
    return float("nan")


def crashes(labels, predictions, probabilities, num_classes):
    return labels[len(labels) + 5]


@hookimpl
def register_metrics(register):
    register(MetricSpec("kappa", kappa, format=".3f", description="Cohen's kappa"))
    register(MetricSpec("nan_score", always_nan))
    register(MetricSpec("crash_score", crashes))
'''


def test_observers_metrics_and_losses_of_plugins(fb_env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path, {"tracker.py": TRACKER, "failing.py": FAILING_OBSERVER, "extra_metrics.py": METRICS,
                     "net_plugin.py": METHOD.format(name="plain", factory="net_models:Net"), "net_models.py": MODELS})
    log = tmp_path / "events.jsonl"
    env = {**with_plugins(fb_env, tmp_path, "tracker", "failing", "extra_metrics", "net_plugin"),
           "TRACKER_LOG": str(log), "FERBENCH_TRACE_PLUGINS": "1"}
    result = ferbench("run", "-m", "plain-net", *SMALL_RUN, env=env)

    # one observer failing hides nothing from another, and the warning names it
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["run_start", "epoch_end", "epoch_end", "fold_end", "run_end"]
    assert events[-1]["status"] == "completed"
    warnings = warnings_of(result)
    for hook, error in (("on_run_start", "ConnectionError: tracker server unreachable"),
                        ("on_epoch_end", "KeyError: 'loss'"), ("on_run_end", "RuntimeError: upload failed")):
        assert any(f"plugin 'failing' failed in hook {hook}: {error}" in w for w in warnings), warnings
    assert "ferbench: trace: on_epoch_end(run, fold=0, epoch=1, metrics) -> plugin 'tracker'" in result.stderr

    # a method's own "train_loss" is logged as such
    assert events[1]["metrics"] == ["lr", "train_loss"]

    # a NaN or a crashing metric is named and left out; the others are recorded and printed as declared
    assert any("plugin 'extra_metrics' (module extra_metrics), metric 'nan_score': returned nan" in w for w in warnings)
    assert any("metric 'crash_score' raised IndexError" in w and "the predictions are stored" in w for w in warnings)
    assert events[3]["metrics"] == ["accuracy", "kappa", "macro_f1", "mean_class_accuracy"]
    summary_lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    (run,) = ferbench_json("runs", env=env)
    kappa = run["metrics"]["kappa"]
    assert -1 <= kappa <= 1 and summary_lines["kappa"].split()[1] == f"{kappa:.3f}"
    assert summary_lines["accuracy"].split()[1] == f"{100 * run['metrics']['accuracy']:.2f}"
    assert summary_lines["accuracy"].endswith("%  (n=1)")

    # plugin metrics reach the board page (a column the reader can show) and the exports
    ferbench("leaderboard", "--out", str(tmp_path / "site"), env=env)
    (board,) = (tmp_path / "site").glob("synthfer--official--*.html")
    html = board.read_text()
    assert '<label for="show-1">kappa</label>' in html and f">{kappa:.3f} <div" in html
    ferbench("export", "--out", str(tmp_path / "export"), env=env)
    assert "kappa" in (tmp_path / "export" / "fold_metrics.csv").read_text()
