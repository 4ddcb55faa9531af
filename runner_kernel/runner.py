"""Run one tool execution in a pooled kernel and produce the raw result envelope (contract-v2 §2, §7).

The service normalizes the envelope authoritatively; this module only makes sure that whatever the tool does,
the caller gets exactly one envelope with one of the statuses and messages of §7's table.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import artifacts
from .limits import MiB, RunLimits, message_for
from .pool import KernelPool, PooledKernel

CONTRACT_VERSION = 2
ERROR_SUMMARY_MAX = 20_000
DISK_CHECK_INTERVAL = 0.5  # seconds between work-dir size checks while a run is going (none for fast runs)


@dataclass
class RunRequest:
    source: str
    entrypoint: str = "run_tool"
    inputs: dict = field(default_factory=dict)  # normalized values (first runs; ignored on action runs)
    files: list[tuple[str, str | os.PathLike | bytes]] = field(default_factory=list)  # (name, path or bytes)
    settings: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    action: dict | None = None  # {action_id, input, state} on follow-up action runs
    limits: RunLimits | None = None  # overrides the Runner's (rlimits can only be lowered, see RunLimits)
    artifacts_dir: str | os.PathLike | None = None  # where artifacts are copied; a new temp dir if None (made
    # only when there are artifacts; the caller owns it)


@dataclass
class RunOutcome:
    envelope: dict  # {contract_version, status, error_summary, outputs, next_actions, state, artifacts}
    stdout: str = ""
    stderr: str = ""
    traceback: str | None = None  # for authors only, never for end users
    timings: dict[str, float] = field(default_factory=dict)  # queue_wait_s, prepare_s, exec_s, collect_s, total_s
    artifact_files: dict[str, Path] = field(default_factory=dict)  # artifact id -> copied file
    kernel_pid: int | None = None  # for logs and tests: also the process group and session id it ran in

    @property
    def status(self) -> str:
        return self.envelope["status"]

    @property
    def error_summary(self) -> str | None:
        return self.envelope["error_summary"]


class Runner:
    def __init__(self, pool: KernelPool, limits: RunLimits | None = None, max_result_bytes: int = 32 * MiB):
        self.pool = pool
        self.limits = limits or pool.limits
        self.max_result_bytes = max_result_bytes

    async def run(self, request: RunRequest) -> RunOutcome:
        t0 = time.perf_counter()
        limits = request.limits or self.limits
        try:
            compile(request.source, "tool.py", "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes in the source
            summary = syntax_summary(exc)
            return RunOutcome(_envelope("failed", summary), traceback=summary,
                              timings={"queue_wait_s": 0.0, "total_s": time.perf_counter() - t0})

        kernel = await self.pool.acquire()
        timings = {"queue_wait_s": kernel.wait_s}
        out, err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
        try:
            t1 = time.perf_counter()
            params, baseline = self._prepare(kernel, request, limits)
            t2 = time.perf_counter()
            oom_before = _oom_kills()
            ending = await self._execute(kernel, params, limits, baseline, out, err)
            kernel.kill()  # nothing of the tool may run (or write to output/) once its time is over
            t3 = time.perf_counter()
            if ending == "done" and artifacts.tree_size(kernel.work_dir) - baseline > limits.disk_bytes:
                ending = "disk"
            envelope, tb = self._result(kernel, ending, limits, oom_before)
            dest = Path(request.artifacts_dir) if request.artifacts_dir else None
            envelope["artifacts"], files = artifacts.collect(kernel.output_dir, dest)
            t4 = time.perf_counter()
        finally:
            self.pool.release(kernel)
        timings.update(prepare_s=t2 - t1, exec_s=t3 - t2, collect_s=t4 - t3, total_s=t4 - t0)
        return RunOutcome(envelope, out.getvalue(), err.getvalue(), tb, timings, files, kernel.pid)

    # ------------------------------------------------------------------------------------------ steps

    def _prepare(self, kernel: PooledKernel, request: RunRequest, limits: RunLimits) -> tuple[dict, int]:
        """Put the run's files into the kernel's work dir; return the driver's parameters and bytes written."""
        work, input_dir = kernel.work_dir, kernel.input_dir
        written = 0
        files, taken = [], set()
        for name, src in request.files:
            target = input_dir / _unique_name(name, taken)
            if isinstance(src, (bytes, bytearray, memoryview)):
                target.write_bytes(src)
            else:
                shutil.copyfile(src, target)
            size = target.stat().st_size
            written += size
            files.append({"name": target.name, "path": str(target), "bytes": size})
            _give(target, kernel.owner)

        action = request.action
        inputs = {} if action else request.inputs  # contract §1: read_inputs() is {} on action runs
        memory = {**request.memory, "settings": request.settings}
        env = {
            "SKRIPTOTEKET_INPUTS": json.dumps(inputs),
            "SKRIPTOTEKET_INPUT_MANIFEST": json.dumps({"files": files}),
            "SKRIPTOTEKET_INPUT_DIR": str(input_dir),
            "SKRIPTOTEKET_OUTPUT_DIR": str(kernel.output_dir),
            "SKRIPTOTEKET_MEMORY_PATH": str(work / "memory.json"),
            "SKRIPTOTEKET_ENTRYPOINT": request.entrypoint,
        }
        meta = {"inputs.json": inputs, "input_manifest.json": {"files": files}, "memory.json": memory}
        if action:
            env["SKRIPTOTEKET_ACTION"] = json.dumps(action)
            meta["action.json"] = action
        for name, value in meta.items():
            data = json.dumps(value).encode()
            (work / name).write_bytes(data)
            written += len(data)
            _give(work / name, kernel.owner)

        source_path = kernel.root / "tool.py"  # outside the work dir: not an artifact, not counted as disk use
        source_path.write_text(request.source, encoding="utf-8")
        params = {
            "source_path": str(source_path),
            "entrypoint": request.entrypoint,
            "work_dir": str(work),
            "input_dir": str(input_dir),
            "output_dir": str(kernel.output_dir),
            "result_path": str(kernel.root / "result.json"),
            "env": env,
            "limits": limits.kernel_limits(),
            "kernel_limits": self.pool.limits.kernel_limits(),
            "max_result_bytes": self.max_result_bytes,
        }
        return params, written

    async def _execute(self, kernel, params, limits, baseline, out, err) -> str:
        """Send one execute_request; end with "done", "timeout", "died" or "disk"."""
        code = f"_skriptoteket_driver.run({json.dumps(params)!r})"
        msg_id = kernel.kc.execute(code, store_history=False, allow_stdin=False)
        finished = asyncio.ensure_future(_drain_iopub(kernel.kc, msg_id, out, err))
        disk = asyncio.ensure_future(_watch_disk(kernel.work_dir, baseline + limits.disk_bytes))
        try:
            done, _ = await asyncio.wait({finished, disk, kernel.died}, timeout=limits.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
            disk.cancel()
        if finished in done:
            return "done"
        if disk in done:
            return "disk"
        return "died" if kernel.died in done else "timeout"

    def _result(self, kernel: PooledKernel, ending: str, limits: RunLimits, oom_before: int) -> tuple[dict, str | None]:
        if ending == "timeout":
            return _envelope("timed_out", message_for("timeout", limits)), None
        if ending == "disk":
            return _envelope("failed", message_for("disk", limits)), None
        if ending == "died":
            # The kernel vanished without a result: name the memory limit when the OOM killer did it.
            reason = "memory" if _oom_kills() > oom_before else "killed"
            return _envelope("failed", message_for(reason, limits)), f"kernel exit status {kernel.exit_status()}"
        try:
            doc = json.loads((kernel.root / "result.json").read_text(encoding="utf-8"))
            kind = doc["kind"]
        except (OSError, ValueError, KeyError, TypeError):
            return _envelope("failed", message_for("contract", limits)), None
        if kind == "ok":
            return _envelope("succeeded", None, doc.get("outputs"), doc.get("next_actions"), doc.get("state")), None
        reason = doc.get("reason")
        if reason in ("user_error", "result"):
            return _envelope("failed", str(doc.get("message") or "")), doc.get("message")
        return _envelope("failed", message_for(reason, limits, doc.get("exc_name", "Exception"))), doc.get("traceback")


# ---------------------------------------------------------------------------------------------- helpers


async def _drain_iopub(kc, msg_id: str, out: _Capped, err: _Capped) -> None:
    """Collect this execution's stdout/stderr until the kernel reports idle (all output was sent by then)."""
    while True:
        msg = await kc.get_iopub_msg()
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            (out if content.get("name") == "stdout" else err).write(content.get("text", ""))
        elif kind == "error":  # the driver itself failed (it catches everything the tool raises)
            err.write(_ANSI.sub("", "\n".join(content.get("traceback", []))) + "\n")
        elif kind == "status" and content.get("execution_state") == "idle":
            return


async def _watch_disk(work_dir: Path, max_bytes: int) -> None:
    """Returns when the work dir holds more than ``max_bytes``; checked only while a run takes a while."""
    while True:
        await asyncio.sleep(DISK_CHECK_INTERVAL)
        if await asyncio.to_thread(artifacts.tree_size, work_dir) > max_bytes:
            return


class _Capped:
    """Keeps the first ``cap`` bytes of a stream, then counts what it drops (UTF-8 safe)."""

    def __init__(self, cap: int):
        self.cap, self.size, self.dropped, self.parts = cap, 0, 0, []

    def write(self, text: str) -> None:
        if self.dropped:
            self.dropped += len(text.encode("utf-8", "replace"))
            return
        data = text.encode("utf-8", "replace")
        room = self.cap - self.size
        if len(data) > room:
            self.parts.append(data[:room].decode("utf-8", "ignore"))
            self.size = self.cap
            self.dropped += len(data) - room
        else:
            self.parts.append(text)
            self.size += len(data)

    def getvalue(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[output truncated: {self.dropped:,} more bytes not kept (limit {self.cap:,} bytes)]\n"
        return text


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def syntax_summary(exc: Exception) -> str:
    """Message, line, column and a caret line under the offending text (contract §7)."""
    if not isinstance(exc, SyntaxError):
        return f"Syntax error: {exc}"
    line, col = exc.lineno or 1, exc.offset or 1
    summary = f"SyntaxError: {exc.msg} (line {line}, column {col})"
    text = (exc.text or "").rstrip("\r\n")
    if text:
        width = 1
        if exc.end_lineno == exc.lineno and exc.end_offset and exc.end_offset > col:
            width = exc.end_offset - col
        pad = len(text[: col - 1].expandtabs())
        summary += f"\n    {text.expandtabs()}\n    {' ' * pad}{'^' * width}"
    return summary


def _envelope(status, error_summary=None, outputs=None, next_actions=None, state=None) -> dict:
    if error_summary is not None:
        error_summary = error_summary.encode("utf-8")[:ERROR_SUMMARY_MAX].decode("utf-8", "ignore")
    return {
        "contract_version": CONTRACT_VERSION,
        "status": status,
        "error_summary": error_summary,
        "outputs": outputs or [],
        "next_actions": next_actions or [],
        "state": state,
        "artifacts": [],
    }


def _unique_name(name: str, taken: set[str]) -> str:
    """A plain file name for an upload: no directories, no dot-names; duplicates get " (2)", " (3)"..."""
    base = os.path.basename(str(name).replace("\\", "/")).strip() or "file"
    if base in (".", ".."):
        base = "file"
    stem, ext = os.path.splitext(base)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem} ({n}){ext}"
    taken.add(candidate)
    return candidate


def _give(path: Path, owner: tuple[int, int] | None) -> None:
    if owner:
        os.chown(path, *owner)


def _oom_kills() -> int:
    """The OOM killer's kill count for our memory cgroup (v2 memory.events, v1 memory.oom_control), or 0."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates.append(f"/sys/fs/cgroup{path}/memory.events")
        elif "memory" in controllers.split(","):
            candidates.append(f"/sys/fs/cgroup/memory{path}/memory.oom_control")
    for candidate in candidates:
        try:
            with open(candidate) as f:
                for row in f:
                    if row.startswith("oom_kill "):
                        return int(row.split()[1])
        except OSError:
            continue
    return 0
