"""Per-execution limits (contract-v2 §7) and the user-facing words for hitting them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

GiB = 1 << 30
MiB = 1 << 20

SANDBOX_TIMEOUT = 60.0  # author sandbox runs
PRODUCTION_TIMEOUT = 120.0  # published runs


@dataclass(frozen=True)
class RunLimits:
    """What one execution may use.

    ``timeout`` and ``output_bytes`` are enforced by the runner process and may differ per run. The others are
    rlimits set when a pooled kernel starts (the kernel exists before the run is known); a run may only
    *lower* them (applied inside the kernel right before the tool runs), never raise them.
    """

    timeout: float = SANDBOX_TIMEOUT  # wall clock, seconds
    memory_bytes: int = 1 * GiB  # address space the tool may add on top of the idle kernel
    processes: int = 256  # processes + threads (RLIMIT_NPROC, on top of what the uid already runs)
    disk_bytes: int = 256 * MiB  # per file (RLIMIT_FSIZE) and in total under the work dir
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 200_000  # stdout and stderr kept, each

    @classmethod
    def sandbox(cls, **changes) -> RunLimits:
        return cls(timeout=SANDBOX_TIMEOUT, **changes)

    @classmethod
    def production(cls, **changes) -> RunLimits:
        return cls(timeout=PRODUCTION_TIMEOUT, **changes)

    def replace(self, **changes) -> RunLimits:
        return dataclasses.replace(self, **changes)

    def kernel_limits(self) -> dict[str, int]:
        """The rlimit part, as passed to the launcher and the in-kernel driver."""
        return {
            "memory_bytes": self.memory_bytes,
            "processes": self.processes,
            "disk_bytes": self.disk_bytes,
            "open_files": self.open_files,
        }


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


# Contract §7: exactly these words reach the user. One place, so the table and the code cannot drift.
def message_for(reason: str, limits: RunLimits, exc_name: str = "") -> str:
    if reason == "timeout":
        return "Execution timed out."
    if reason == "memory":
        return f"Execution failed: the tool exceeded the memory limit ({human_bytes(limits.memory_bytes)})."
    if reason == "processes":
        return f"Execution failed: the tool exceeded the process limit ({limits.processes} processes/threads)."
    if reason == "disk":
        return f"Execution failed: the tool exceeded the disk limit ({human_bytes(limits.disk_bytes)} written)."
    if reason == "open_files":
        return f"Execution failed: the tool exceeded the open-file limit ({limits.open_files} files)."
    if reason == "killed":
        return "Execution failed (the tool's process was killed)."
    if reason == "exception":
        return f"Tool execution failed ({exc_name})."
    return "Execution failed (runner contract violation)."
