"""``ferbench data check``: is a dataset where and how ferbench expects it?"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .contracts import load_dataset
from .specs import DatasetSpec

SPLIT_ORDER = ("train", "val", "test", "all")


@dataclass
class CheckReport:
    """Counts per split and class beside the official ones, and the files that are missing or unreadable."""

    dataset: str
    data_root: str
    samples: int
    counts: dict[str, dict[str, int]]
    reference: Mapping[str, Mapping[str, int]]
    reference_for: str = ""  # the option=value whose reference counts these are ("" = the defaults')
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"dataset": self.dataset, "data_root": self.data_root, "samples": self.samples,
                "counts": self.counts, "reference_counts": {k: dict(v) for k, v in self.reference.items()},
                "reference_for": self.reference_for, "missing": self.missing, "unreadable": self.unreadable}

    def lines(self) -> list[str]:
        """A human-readable table."""
        out = [f"{self.dataset} at {self.data_root}: {self.samples} labelled samples"]
        if self.reference_for:
            out.append(f"official counts for {self.reference_for}")
        out.append(f"{'split':<7} {'class':<11} {'found':>7} {'official':>9} {'diff':>7}")
        for split in sorted(set(self.counts) | set(self.reference), key=_split_key):
            found, reference = self.counts.get(split, {}), self.reference.get(split, {})
            for name in list(found) + [c for c in reference if c not in found]:
                have, want = found.get(name, 0), reference.get(name)
                diff = "" if want is None or want == have else f"{have - want:+d}"
                out.append(f"{split:<7} {name:<11} {have:>7} {'' if want is None else want:>9} {diff:>7}")
        for kind, items in (("missing files", self.missing), ("unreadable images", self.unreadable)):
            if items:
                shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
                out.append(f"{kind}: {len(items)} (skipped in runs): {shown}")
        if not self.missing and not self.unreadable:
            out.append("all image files present and readable")
        return out


def _split_key(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def _readable(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # noqa: BLE001 - any decoder error means unreadable
        return False


def check(spec: DatasetSpec, data_root: Path | None, options: Mapping[str, Any]) -> CheckReport:
    """Load the sample table (fatal problems raise DataError; a table that breaks the contract, e.g. labels
    outside the class list, a PluginError naming the plugin), count it and verify every image file."""
    data = load_dataset(spec, data_root, options)
    split = data.split if data.split is not None else np.full(len(data), "all")
    counts: dict[str, dict[str, int]] = {}
    for part in sorted(set(split.tolist()), key=_split_key):
        labels = np.bincount(data.labels[split == part], minlength=len(data.classes))
        counts[part] = {name: int(n) for name, n in zip(data.classes, labels)}
    which, reference = spec.reference_for(options)
    report = CheckReport(dataset=spec.name, data_root=str(data_root) if data_root else "(embedded)",
                         samples=len(data), counts=counts, reference=reference, reference_for=which)
    if data.files is not None:
        files = [Path(f) for f in data.files]
        exists = [f.is_file() for f in files]
        report.missing = [str(f) for f, ok in zip(files, exists) if not ok]
        present = [f for f, ok in zip(files, exists) if ok]
        with ThreadPoolExecutor(max_workers=8) as pool:
            readable = list(pool.map(_readable, present))
        report.unreadable = [str(f) for f, ok in zip(present, readable) if not ok]
    return report
