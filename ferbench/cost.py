"""What a run costs: the accelerator and how many processes ran it, wall time, training throughput and
peak memory, recorded in the run's row and shown on its leaderboard page."""
from __future__ import annotations

import platform
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .store import Store


def accelerator_name(device: torch.device) -> str:
    """The GPU's model for a CUDA device, else ``cpu`` and the processor's name."""
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return f"cpu ({platform.processor() or platform.machine()})"


class CostMeter:
    """Measures one session of a run on one process, from its creation."""

    def __init__(self, device: torch.device) -> None:
        import torch

        self.device = device
        self.started = time.perf_counter()
        self.accelerator = accelerator_name(device)
        self.peak_bytes: int | None = None  # the largest rank's peak, once the ranks have compared theirs
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def peak_memory_bytes(self) -> int:
        """Peak memory of this process: CUDA memory allocated by tensors on a GPU; on the CPU the peak
        resident set size, which counts the process's whole life (earlier runs of a sweep worker too)."""
        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux

    def run_fields(self, store: Store, run_id: str) -> dict[str, Any]:
        """Cost columns of the run's row: wall time summed over the sessions that executed it, the largest
        peak of any session, and training images per second over all its recorded folds."""
        before = store.query("SELECT coalesce(wall_seconds, 0) AS wall, coalesce(peak_memory_bytes, 0) AS peak "
                             "FROM runs WHERE run_id = ?", [run_id])
        folds = store.query("SELECT sum(images_per_second * train_seconds) AS images, sum(train_seconds) AS seconds "
                            "FROM folds WHERE run_id = ?", [run_id])[0]
        wall, peak = (before[0]["wall"], before[0]["peak"]) if before else (0.0, 0)
        seconds = folds["seconds"] or 0.0
        return {"wall_seconds": float(wall) + time.perf_counter() - self.started,
                "peak_memory_bytes": max(int(peak), self.peak_bytes if self.peak_bytes is not None
                                         else self.peak_memory_bytes()),
                "images_per_second": float(folds["images"]) / seconds if seconds > 0 else None}
