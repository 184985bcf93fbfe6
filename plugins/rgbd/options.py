"""Option defaults and allowed values of the RGB-D datasets (plain data: cheap to import at start-up).

Each option is documented in the loader module of its dataset; the merged dataset takes every option
of its three parts (except ``classes``: the union is 7-class) under the part's prefix, e.g.
``dataset.bosphorus_au_mapping``, plus the name of each part's sub-folder.
"""
from __future__ import annotations

from typing import Any, Mapping

LAYOUTS = ("auto", "flat", "nested")

CALDERMENDS: dict[str, Any] = {"classes": 7, "databases": "both", "aligned": "auto", "invert_depth": True,
                               "layout": "auto"}
CALDERMENDS_CHOICES: dict[str, tuple[Any, ...]] = {
    "classes": (7, 6), "databases": ("both", "CalD3r", "MenD3s"), "aligned": ("auto", "yes", "no"),
    "layout": LAYOUTS}

BU3DFE: dict[str, Any] = {"classes": 7, "intensities": "all", "subject_subset": 0, "subset_seed": 0,
                          "invert_depth": False, "layout": "auto"}
BU3DFE_CHOICES: dict[str, tuple[Any, ...]] = {"classes": (7, 6), "intensities": ("all", "top2"),
                                              "layout": LAYOUTS}

BOSPHORUS: dict[str, Any] = {"au_mapping": False, "neutral": "all", "crop_rgb": True, "layout": "auto"}
BOSPHORUS_CHOICES: dict[str, tuple[Any, ...]] = {"neutral": ("all", "first"), "layout": LAYOUTS}

#: The merged set's parts: name -> (options, choices, default sub-folder name as in [ERAI]'s tree).
PARTS: dict[str, tuple[dict[str, Any], dict[str, tuple[Any, ...]], str]] = {
    "caldermends": (CALDERMENDS, CALDERMENDS_CHOICES, "CalD3RMenD3s"),
    "bu3dfe": (BU3DFE, BU3DFE_CHOICES, "BU3DFE"),
    "bosphorus": (BOSPHORUS, BOSPHORUS_CHOICES, "Bosphorus"),
}
#: What the thesis's merged set uses where it differs from a part's own default (seed 004 §3.10).
MERGED_OVERRIDES: dict[str, Any] = {"bosphorus_au_mapping": True, "bosphorus_neutral": "first"}
_SHARED_OUT = ("classes",)

MERGED: dict[str, Any] = {f"{part}_dir": folder for part, (_, _, folder) in PARTS.items()}
MERGED.update({f"{part}_{key}": value for part, (defaults, _, _) in PARTS.items()
               for key, value in defaults.items() if key not in _SHARED_OUT})
MERGED.update(MERGED_OVERRIDES)
MERGED_CHOICES: dict[str, tuple[Any, ...]] = {
    f"{part}_{key}": allowed for part, (_, choices, _) in PARTS.items()
    for key, allowed in choices.items() if key not in _SHARED_OUT}


def part_options(options: Mapping[str, Any], part: str) -> dict[str, Any]:
    """The options of one part of the merged set, unprefixed (``bosphorus_neutral`` -> ``neutral``)."""
    defaults = PARTS[part][0]
    prefix = f"{part}_"
    merged = {**MERGED, **options}
    return {key: merged[prefix + key] for key in defaults if key not in _SHARED_OUT}
