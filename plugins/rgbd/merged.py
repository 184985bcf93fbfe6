"""``merged-rgbd``: CalD3rMenD3s + BU-3DFE + Bosphorus in one 7-class RGB-D set (thesis §3.10).

Layout: the data root holds the three datasets as sub-folders, each in a layout its own loader
reads (matched case-insensitively; the defaults are [ERAI]'s folder names)::

    <root>/CalD3RMenD3s/...   option caldermends_dir
    <root>/BU3DFE/...         option bu3dfe_dir
    <root>/Bosphorus/...      option bosphorus_dir

An empty folder option leaves that dataset out. Every option of a part is available with the
part's prefix (``caldermends_aligned``, ``bu3dfe_intensities``, ``bosphorus_neutral`` ...), except
``classes``: the union keeps all 7 classes, as the thesis does. Sample ids are
``<sub-folder>/<id in the part>``; subject ids are ``<part>:<subject>`` (e.g. ``bu3dfe:F0001``), so
persons of different datasets never collide.

What the thesis merges (seed 004 §3.10; Global_Initializer.py; Article/plot.py): all of
CalD3rMenD3s, all of BU-3DFE (7 classes, every intensity), and Bosphorus's emotion and neutral scans
plus the action-unit scans of its Table 3.8 conversion. Hence the defaults ``bosphorus_au_mapping =
true`` and ``bosphorus_neutral = first`` (its code kept one neutral scan per subject). Its class
counts (plot.py): anger 1397, disgust 1646, fear 1055, happiness 1779, neutral 3620, sadness 1688,
surprise 933, i.e. 12,118 samples; the text says 12,098.

Protocol: the thesis splits "into a training set and a test set using 80%-20% policy" without
saying more; its code splits samples, not persons (and its Bosphorus subject ids even include the
scan index). ``subject-80-20`` (default) is one random person-independent split, 20% of the subjects
in test; ``sample-80-20`` splits samples (stratified by class), comparable to the thesis's number.

Normalisation: per-fold training statistics per modality, as in the thesis: ``--set
data.fold_statistics=true``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from ferbench.data import FERData
from ferbench.datafiles import child_folder, merge_options, relative_id
from ferbench.errors import DataError

from . import bosphorus, bu3dfe, caldermends
from .common import Row, to_ferdata
from .options import MERGED, MERGED_CHOICES, PARTS, part_options

LOADERS = {"caldermends": caldermends, "bu3dfe": bu3dfe, "bosphorus": bosphorus}


def rows(data_root: Path, options: Mapping[str, Any]) -> list[Row]:
    """The rows of every included part, with ids and subjects prefixed."""
    options = merge_options("merged-rgbd", options, MERGED, MERGED_CHOICES)
    found: list[Row] = []
    for part in PARTS:
        folder_name = options[f"{part}_dir"]
        if not folder_name:
            continue
        folder = child_folder(data_root, folder_name)
        if folder is None:
            raise DataError(f"missing {data_root / folder_name} (the {part} part of merged-rgbd); put the "
                            f"dataset there, set dataset.{part}_dir to its folder name, or to '' to leave it out")
        prefix = relative_id(folder, data_root)
        found += [replace(row, id=f"{prefix}/{row.id}", subject=f"{part}:{row.subject}")
                  for row in LOADERS[part].rows(folder, part_options(options, part))]
    if not found:
        raise DataError("every part of merged-rgbd is switched off; set at least one of "
                        + ", ".join(f"dataset.{part}_dir" for part in PARTS))
    return found


def load(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """The merged set as FERData (the loader named by the ``merged-rgbd`` DatasetSpec)."""
    return to_ferdata(rows(data_root, options), "merged-rgbd", data_root)
