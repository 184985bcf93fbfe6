"""RGB-D FER datasets of the 2D+3D thesis (seed 004): ``caldermends``, ``bu3dfe``, ``bosphorus`` and
their union ``merged-rgbd``; plus the ``ferbench bu3dfe-depth`` converter (BU-3DFE meshes -> depth maps).

Every dataset gives ``rgb`` (3 channels) and ``depth`` (1 channel, uint8: 0 = background, higher =
nearer) in BASIC7 order. Loaders, layouts, options and the reasons for each default are documented
in the sub-modules: :mod:`.caldermends`, :mod:`.bu3dfe`, :mod:`.bosphorus`, :mod:`.merged`; the
``.bnt`` reader in :mod:`.bnt`, the VRML rasteriser in :mod:`.meshdepth`. Sources: datasets.md §6,
§7, §8, §10 and the thesis (§3.1, §3.2, §3.4, §3.10) with its code ([ERAI]).

Protocols at a glance (all seeded, so every method sees the same folds). The defaults are
person-independent; the thesis's own numbers come from sample-level splits (its code splits samples, so
a person's images fall on both sides), and only the sample-level protocols are comparable to them:

* ``caldermends``: ``subject-5fold`` (default) / ``sample-5fold`` (comparable to the thesis, Tables
  3.3, 3.5-3.7).
* ``bu3dfe``: ``random-60-40`` (default, person-independent 60/40 x 5) / ``sample-60-40`` (comparable
  to the thesis, Table 3.4) / ``subject-10fold`` / ``literature-60x10fold`` (60 subjects redrawn 100
  times, 10-fold each: the protocol of the other works in Table 3.4).
* ``bosphorus``: ``subject-10fold`` (default) / ``subject-5fold`` (the thesis reports no Bosphorus-only
  number).
* ``merged-rgbd``: ``subject-80-20`` (default) / ``sample-80-20`` (comparable to the thesis, Table 3.9).

Per-fold normalisation statistics (the thesis z-scores each modality with its training fold's
mean/std) are the engine's ``data.fold_statistics``: add ``--set data.fold_statistics=true``.

Class subsets (``classes=6``) drop the samples of one class and the loaded data has six classes, so a
model trained on them has six outputs and is scored on six classes; the DatasetSpec lists the default
seven.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ferbench import hookimpl
from ferbench.emotions import BASIC7
from ferbench.specs import DatasetSpec, ProtocolSpec

from . import options as opts

if TYPE_CHECKING:
    import click

_CALDERMENDS_COUNTS = {"anger": 881, "disgust": 1101, "fear": 554, "happiness": 1197, "neutral": 3422,
                       "sadness": 1186, "surprise": 375}  # thesis Fig. 3.1 / Article/plot.py (8,716)
_BU3DFE_COUNTS = {name: (100 if name == "neutral" else 400) for name in BASIC7}  # 100 subjects x 25
_MERGED_COUNTS = {"anger": 1397, "disgust": 1646, "fear": 1055, "happiness": 1779, "neutral": 3620,
                  "sadness": 1688, "surprise": 933}  # Article/plot.py "Global" (12,118)
_LAYOUT_NOTE = "layout auto|flat|nested: the tree at the data root or in its one sub-folder"


def _subject_kfold(name: str, folds: int, note: str) -> ProtocolSpec:
    return ProtocolSpec(name, "subject_kfold", f"{folds}-fold, subject-independent; {note}", folds=folds)


def _split(name: str, test: float, repeats: int, by_subject: bool, note: str) -> ProtocolSpec:
    return ProtocolSpec(name, "repeated_split", note, test_fraction=test, repeats=repeats,
                        group_by_subject=by_subject)


def _protocols(*specs: ProtocolSpec) -> dict[str, ProtocolSpec]:
    return {spec.name: spec for spec in specs}


SPECS = (
    DatasetSpec(
        name="caldermends",
        loader="ferbench_plugins.rgbd.caldermends:load",
        classes=BASIC7,
        protocols=_protocols(
            _subject_kfold("subject-5fold", 5, "the thesis's 5-fold CV (80/20 per fold) made person-independent; "
                           "not comparable to the thesis's numbers"),
            ProtocolSpec("sample-5fold", "kfold", "5-fold over samples (stratified), as the thesis's code: "
                         "comparable to the thesis's numbers (subjects leak across folds)", folds=5)),
        default_protocol="subject-5fold",
        description="CalD3r + MenD3s spontaneous RGB-D (SR300), 8,716 samples",
        modalities=("rgb", "depth"),
        options=opts.CALDERMENDS,
        option_choices=opts.CALDERMENDS_CHOICES,
        homepage="https://doi.org/10.1016/j.jvcir.2023.104033",
        layouts="<root>/{CalD3r,MenD3s}/<Emotion>/{RGB,DEPTH}/<g>_<id>_<code>_<label>_{Color,Depth}.png; "
                + _LAYOUT_NOTE,
        reference_counts={"all": _CALDERMENDS_COUNTS},
    ),
    DatasetSpec(
        name="bu3dfe",
        loader="ferbench_plugins.rgbd.bu3dfe:load",
        classes=BASIC7,
        protocols=_protocols(
            _split("random-60-40", 0.4, 5, True, "60/40 person-independent random split (60% of the subjects "
                   "train), repeated 5 times; not comparable to the thesis's numbers"),
            _split("sample-60-40", 0.4, 5, False, "60/40 split over samples (stratified), repeated 5 times: "
                   "comparable to the thesis's numbers (subjects leak)"),
            _subject_kfold("subject-10fold", 10, "with subject_subset=60, classes=6, intensities=top2: one "
                           "draw of the literature's 60-subject protocol"),
            ProtocolSpec("literature-60x10fold", "repeated_subject_kfold",
                         "the literature's protocol (datasets.md §6.3): 60 random subjects, 10-fold "
                         "person-independent CV, redrawn 100 times (1,000 folds; pick some with --fold); use "
                         "with classes=6, intensities=top2", folds=10, repeats=100, subject_subset=60)),
        default_protocol="random-60-40",
        description="BU-3DFE posed RGB + depth rendered from the 3D meshes, 2,500 samples",
        modalities=("rgb", "depth"),
        options=opts.BU3DFE,
        option_choices=opts.BU3DFE_CHOICES,
        homepage="https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html",
        layouts="<root>/F0001/F0001_AN01WH_F2D.bmp + F0001_AN01WH_F3D_depth.png (render with "
                "`ferbench bu3dfe-depth`); " + _LAYOUT_NOTE,
        reference_counts={"all": _BU3DFE_COUNTS},
    ),
    DatasetSpec(
        name="bosphorus",
        loader="ferbench_plugins.rgbd.bosphorus:load",
        classes=BASIC7,
        protocols=_protocols(
            _subject_kfold("subject-10fold", 10, "no official FER split exists"),
            _subject_kfold("subject-5fold", 5, "no official FER split exists")),
        default_protocol="subject-10fold",
        description="Bosphorus posed RGB + depth from .bnt range scans (emotion, neutral, optionally AU scans)",
        modalities=("rgb", "depth"),
        options=opts.BOSPHORUS,
        option_choices=opts.BOSPHORUS_CHOICES,
        homepage="http://bosphorus.ee.boun.edu.tr/",
        layouts="<root>/bs000/bs000_E_ANGER_0.{png,bnt}, bs000_N_N_0.{png,bnt}, bs000_LFAU_12_0.{png,bnt}; "
                + _LAYOUT_NOTE,
    ),
    DatasetSpec(
        name="merged-rgbd",
        loader="ferbench_plugins.rgbd.merged:load",
        classes=BASIC7,
        protocols=_protocols(
            _split("subject-80-20", 0.2, 1, True, "one 80/20 person-independent split"),
            _split("sample-80-20", 0.2, 1, False, "one 80/20 split over samples (stratified), as the thesis: "
                   "comparable to its number (subjects leak)")),
        default_protocol="subject-80-20",
        description="CalD3rMenD3s + BU-3DFE + Bosphorus (with AU conversion), the thesis's merged set",
        modalities=("rgb", "depth"),
        options=opts.MERGED,
        option_choices=opts.MERGED_CHOICES,
        layouts="<root>/{CalD3RMenD3s,BU3DFE,Bosphorus}/ each in its own dataset's layout "
                "(folder names: options *_dir)",
        reference_counts={"all": _MERGED_COUNTS},
    ),
)


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    for spec in SPECS:
        register(spec)


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click

    @cli.command("bu3dfe-depth")
    @click.option("--data-root", required=True, type=click.Path(file_okay=False),
                  help="BU-3DFE folder; every *_F3D.wrl below it is rendered.")
    @click.option("--size", default=512, show_default=True, type=click.IntRange(8, 4096),
                  help="Side of the square depth map in pixels (the F2D textures are 512).")
    @click.option("--bits", default="16", show_default=True, type=click.Choice(["16", "8"]),
                  help="PNG depth resolution.")
    @click.option("--overwrite", is_flag=True, help="Render meshes whose depth map already exists again.")
    def bu3dfe_depth(data_root: str, size: int, bits: str, overwrite: bool) -> None:
        """Render BU-3DFE face meshes (<name>_F3D.wrl) to depth maps <name>_F3D_depth.png beside them
        (orthographic z-buffer: background 0, nearer = brighter)."""
        from .meshdepth import convert_tree

        for line in convert_tree(data_root, size, int(bits), overwrite):
            click.echo(line)
