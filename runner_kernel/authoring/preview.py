"""The live preview: the tool exactly as a teacher will see it, in the author's notebook, running the notebook's
unsaved content in the sandbox (docs/authoring.md "Preview").

It *is* the teacher's tool app: ``PreviewApp`` subclasses ``runner_kernel.app.ToolApp`` (same form, buttons,
step history, result renderer, same run orchestration: ``POST runs`` → uploads → runner → artifacts →
``POST runs/{id}/result`` → the service's normalized payload). Only three seams differ:

- the service client is a ``SandboxClient``: every app, run, session and settings call says ``context=sandbox``
  and names the snapshot, so the service resolves the snapshot's content and keeps sandbox sessions, state,
  files and settings apart from production;
- tool code runs in a fresh kernel from a **pool of one, started lazily in the author's notebook kernel**
  (``local_runner()``): JupyterLab has no runner host (that lives in the Voila launcher), and one warm kernel
  per authoring notebook is enough for one author clicking Run (a jupyter_server extension hosting a shared
  pool would save one idle kernel per notebook, at the price of a second long-lived process to configure);
- around the teacher's view, an author's frame: a sample picker, the snapshot and a one-click link to the same
  snapshot in the author's own Voila tool app, and the run's stdout, stderr and traceback (teachers never see
  these).
"""

from __future__ import annotations

import asyncio
import atexit
import html
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ipywidgets as widgets
from IPython.display import display

from ..app import ToolApp
from ..client import ServiceClient, ServiceError
from ..renderer.markup import notice_html

PREVIEW_CSS = """
.skr-preview { border: 2px dashed #c7a500; border-radius: 8px; padding: 6px 10px; margin: 6px 0; }
.skr-preview-bar { background: #fff8d6; border-radius: 6px; padding: 4px 8px; gap: 10px; align-items: center; }
.skr-preview-bar .skr-preview-label { font-weight: 600; }
.skr-preview-logs pre { background: #f6f6f6; border: 1px solid #ddd; border-radius: 4px; padding: 6px;
  max-height: 320px; overflow: auto; white-space: pre-wrap; font-size: 12px; }
.skr-preview-logs .skr-author-traceback { background: #fff0f0; border-color: #e0a0a0; }
"""

# ------------------------------------------------------------------------------------------ local runner

_runner: dict[str, Any] = {}


async def local_runner():
    """The kernel's own runner: a pool of one fresh, limited kernel (sandbox limits), started on first use."""
    from ..limits import RunLimits
    from ..pool import KernelPool
    from ..runner import Runner

    if "runner" not in _runner:
        pool = KernelPool(size=1, limits=RunLimits.sandbox())
        _runner["pool"], _runner["runner"] = pool, Runner(pool)
        await pool.start()
        atexit.register(_kill_pool, pool)
    return _runner["runner"]


def warm_up() -> None:
    """Start the pool in the background (``%load_ext`` does this, so the first preview does not wait)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
    loop.create_task(local_runner())


def _kill_pool(pool) -> None:
    queue = getattr(pool, "_ready", None)
    for kernel in list(getattr(queue, "_queue", []) if queue is not None else []):
        kernel.kill()


async def run_locally(execution: dict, files: list[tuple[str, str]], artifacts_dir: str) -> dict:
    """One execution in the local pool; the same outcome dict as ``runner_host.run_tool``."""
    from ..runner import RunRequest

    runner = await local_runner()
    limits = runner.pool.limits
    timeout = execution.get("timeout_seconds")
    if isinstance(timeout, (int, float)) and timeout > 0:
        limits = limits.replace(timeout=min(float(timeout), 600.0))
    outcome = await runner.run(RunRequest(
        source=execution["source"], entrypoint=execution.get("entrypoint") or "run_tool",
        inputs=execution.get("inputs") or {}, files=files, settings=execution.get("settings") or {},
        action=execution.get("action"), limits=limits, artifacts_dir=artifacts_dir,
    ))
    return {"envelope": outcome.envelope, "stdout": outcome.stdout, "stderr": outcome.stderr,
            "traceback": outcome.traceback, "timings": outcome.timings,
            "artifact_files": {k: str(v) for k, v in outcome.artifact_files.items()}}


# ------------------------------------------------------------------------------------------ the sandbox client


class SandboxClient(ServiceClient):
    """The tool app's client, pinned to the sandbox context and one snapshot (or version)."""

    def __init__(self, token: str, *, snapshot: str | None = None, version: int | None = None, **kwargs):
        super().__init__(token, **kwargs)
        self.snapshot, self.version = snapshot, version

    @classmethod
    def pinned(cls, client: ServiceClient, snapshot: str | None, version: str | int | None) -> SandboxClient:
        """The tool app's (already connected) client, pinned to the sandbox: shares its HTTP connection."""
        pinned = cls.__new__(cls)
        pinned.__dict__.update(client.__dict__)
        pinned.snapshot = snapshot or None
        pinned.version = int(version) if str(version or "").isdigit() else None
        return pinned

    def _params(self) -> dict:
        return {"context": "sandbox", **({"snapshot": self.snapshot} if self.snapshot else {}),
                **({"version": str(self.version)} if self.version else {})}

    async def app(self, slug: str, context: str = "sandbox") -> dict:
        return await self.request("GET", f"apps/{quote(slug, safe='')}", params=self._params())

    async def create_run(self, body: dict) -> dict:
        pinned = {"context": "sandbox", **({"snapshot_id": self.snapshot} if self.snapshot else {}),
                  **({"version_id": self.version} if self.version else {})}
        return await self.request("POST", "runs", json={**body, **pinned})

    async def clear_session(self, slug: str, context: str = "sandbox") -> dict:
        return await self.request("DELETE", f"sessions/{quote(slug, safe='')}", params=self._params())

    async def save_settings(self, slug: str, values: dict, context: str = "sandbox") -> dict:
        return await self.request("PUT", f"settings/{quote(slug, safe='')}", params=self._params(),
                                  json={"values": values})


def voila_preview_url(slug: str, snapshot: str | None = None, version: int | None = None) -> str:
    """The author's own tool app (their default server, Voila) showing the same sandbox content."""
    base = os.environ.get("JUPYTERHUB_BASE_URL", "/") or "/"
    base = base if base.endswith("/") else base + "/"
    query = f"tool={quote(slug)}&context=sandbox" + (f"&snapshot={snapshot}" if snapshot else "") + (
        f"&version={version}" if version else "")
    return f"{base}hub/user-redirect/?{query}"


# ------------------------------------------------------------------------------------------ the preview app


class PreviewApp(ToolApp):
    def __init__(self, client: SandboxClient, *, lang: str = "en", samples: list[dict] | None = None,
                 sample_dir: Path | None = None, slug: str = "", snapshot: dict | None = None):
        super().__init__(client, lang=lang)
        self.slug = slug
        self.samples = samples or []
        self.sample_dir = sample_dir or Path.cwd()
        self.snapshot = snapshot or {}
        self.last_outcome: dict | None = None
        self.outcomes: list[dict] = []
        self.preview_timings: dict[str, float] = {}
        self._scratch: list[str] = []
        self.sample_results: dict[str, dict] = {}  # sample name -> the payload of its last run
        self.ready = asyncio.Event() if _loop_running() else None

        options = [(f"sample: {s['name']}", i) for i, s in enumerate(self.samples)]
        self.sample_picker = widgets.Dropdown(options=options or [("(no samples)", -1)], layout={"width": "260px"})
        self.sample_picker.add_class("skr-preview-sample")
        self.sample_button = widgets.Button(description="Run sample", disabled=not self.samples)
        self.sample_button.add_class("skr-preview-run-sample")
        self.sample_button.on_click(lambda _b: asyncio.ensure_future(self.run_sample(self.sample_picker.value)))
        link = voila_preview_url(slug, self.snapshot.get("id"))
        info = (f'<span class="skr-preview-label">Preview (sandbox)</span> · snapshot '
                f'<code>{html.escape(str(self.snapshot.get("id", ""))[:8])}</code> · '
                f'<a class="skr-preview-voila" href="{html.escape(link)}" target="_blank">open in my tool app ↗</a>')
        self.bar = widgets.HBox([widgets.HTML(info), self.sample_picker, self.sample_button])
        self.bar.add_class("skr-preview-bar")
        self.logs = widgets.HTML("")
        self.logs.add_class("skr-preview-logs")
        self.notes = widgets.HTML("")
        self.notes.add_class("skr-preview-notes")
        self.explain = widgets.VBox([])  # "Explain this failure" (AI assistant), on failed runs when it is on
        self.view = widgets.VBox([widgets.HTML(f"<style>{PREVIEW_CSS}</style>"), self.bar, self.notes, self.root,
                                  self.logs, self.explain])
        self.view.add_class("skr-preview")

    # ---- the seams ------------------------------------------------------------------------------------

    async def _run_tool(self, execution: dict, files: list[tuple[str, str]]) -> dict:
        artifacts_dir = tempfile.mkdtemp(prefix="skr-preview-artifacts-")
        self._scratch.append(artifacts_dir)
        try:
            outcome = await run_locally(execution, files, artifacts_dir)
        except Exception as exc:  # noqa: BLE001 - the author sees what happened
            outcome = {"envelope": {"contract_version": 2, "status": "failed",
                                    "error_summary": "The local runner failed.", "outputs": [], "next_actions": [],
                                    "state": None, "artifacts": []},
                       "stdout": "", "stderr": f"local runner failed: {exc!r}", "traceback": None, "timings": {},
                       "artifact_files": {}}
        self.last_outcome = outcome
        self.outcomes.append(outcome)
        return outcome

    @staticmethod
    def _stage_dir() -> Path | None:
        return Path(tempfile.mkdtemp(prefix="skr-preview-run-"))

    async def execute(self, body: dict, uploads: list[dict], *, label: str | None) -> None:
        self.last_outcome = None
        try:
            await super().execute(body, uploads, label=label)
        finally:
            cleanup_dirs(*self._scratch)  # the artifacts were uploaded to the service by now
            self._scratch.clear()
        self.show_logs(self.last_outcome)

    def show_logs(self, outcome: dict | None) -> None:
        """stdout, stderr and the traceback of the last run: for the author only."""
        if outcome is None:
            return
        parts = []
        timings = outcome.get("timings") or {}
        parts.append(f'<div class="skr-preview-timing">run {1000 * float(timings.get("exec_s") or 0):.0f} ms in the '
                     f'sandbox kernel; whole round trip {self.timings.get("total_ms", 0):.0f} ms</div>')
        if outcome.get("traceback"):
            parts.append('<div><b>Traceback</b> (only you see this)</div>'
                         f'<pre class="skr-author-traceback">{html.escape(outcome["traceback"])}</pre>')
        for name in ("stdout", "stderr"):
            text = outcome.get(name) or ""
            if text and not (name == "stderr" and outcome.get("traceback") and text.strip() == outcome["traceback"].strip()):
                parts.append(f'<div><b>{name}</b></div><pre class="skr-author-{name}">{html.escape(text)}</pre>')
        self.logs.value = "".join(parts)
        from .assistant import explain_failure_widget

        offer = explain_failure_widget(outcome)
        self.explain.children = (offer,) if offer is not None else ()

    # ---- samples ----------------------------------------------------------------------------------------

    def sample_uploads(self, sample: dict) -> list[dict]:
        uploads = []
        base = self.sample_dir.resolve()
        for rel in sample.get("files") or []:
            path = (base / rel).resolve()
            if base not in path.parents or not path.is_file():
                raise FileNotFoundError(f"sample file {rel!r} not found next to the notebook")
            data = path.read_bytes()
            uploads.append({"name": path.name, "bytes": len(data), "content": data})
        return uploads

    async def run_sample(self, index: int) -> None:
        if not (0 <= index < len(self.samples)) or self.busy:
            return
        sample = self.samples[index]
        try:
            uploads = self.sample_uploads(sample)
        except FileNotFoundError as exc:
            self.notes.value = notice_html("error", str(exc))
            self._mark_done()
            return
        if hasattr(self, "form"):
            self.form.apply_prefill(sample.get("inputs") or {})
        body = {"tool": self.slug, "context": "sandbox", "inputs": sample.get("inputs") or {},
                "files": [{"name": u["name"], "bytes": u["bytes"]} for u in uploads],
                "session_files": "none", "action": None, "expected_state_rev": self.state_rev}
        await self.execute(body, uploads, label=f"sample: {sample['name']}")
        for action in sample.get("actions") or []:
            last = self.history.steps[-1] if self.history.steps else {}
            if self.stale or (last.get("payload") or {}).get("status") != "succeeded":
                break  # a failed step offers no actions: the author reads its traceback instead
            await self.run_action(action["action_id"], action.get("input") or {})
        if self.history.steps and self.history.steps[-1].get("payload") is not None:
            self.sample_results[sample["name"]] = self.history.steps[-1]["payload"]


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _sample_index(samples: list[dict], sample: str | int | None) -> int | None:
    if sample is None or not samples:
        return None
    if isinstance(sample, int):
        return sample if 0 <= sample < len(samples) else None
    return next((i for i, s in enumerate(samples) if s["name"] == sample), None)


async def open_preview(authoring, *, sample: str | int | None = 0, run: bool = True, app: PreviewApp | None = None,
                       tool=None) -> PreviewApp:
    """Snapshot the notebook's content, open it in a ``PreviewApp`` and (``run``) run the sample."""
    t0 = time.perf_counter()
    tool = tool or authoring.current()
    index = _sample_index(tool.samples, sample)
    if app is None:
        snap = await asyncio.to_thread(authoring.snapshot, tool)
        app = build_preview(authoring, tool, snap)
    t1 = time.perf_counter()
    chosen = tool.samples[index] if index is not None else None
    if chosen and chosen.get("settings"):
        try:  # the sample's settings are this preview's saved sandbox settings
            await app.client.save_settings(app.slug, chosen["settings"])
        except ServiceError as exc:
            app.notes.value = notice_html("error", f"Sample settings refused: {exc.message}")
    await app.open_tool(app.slug)
    t2 = time.perf_counter()
    if chosen is not None and hasattr(app, "form"):
        app.sample_picker.value = index
        app.form.apply_prefill(chosen.get("inputs") or {})
    if run and chosen is not None and hasattr(app, "form"):
        await app.run_sample(index)
    t3 = time.perf_counter()
    app.preview_timings = {"snapshot_ms": (t1 - t0) * 1e3, "open_ms": (t2 - t1) * 1e3, "run_ms": (t3 - t2) * 1e3,
                           "total_ms": (t3 - t0) * 1e3}
    app.root.add_class("skr-preview-ready")
    if app.ready is not None:
        app.ready.set()
    return app


def build_preview(authoring, tool, snap: dict) -> PreviewApp:
    client = SandboxClient(authoring.api.token, snapshot=snap["id"], lang=authoring.lang,
                           api_url=authoring.api.api_url)
    sample_dir = tool.path.parent if tool.path else Path.cwd()
    return PreviewApp(client, lang=authoring.lang, samples=tool.samples, sample_dir=sample_dir,
                      slug=snap["tool"]["slug"], snapshot=snap)


def start_preview(authoring, *, sample: str | int | None = 0, run: bool = True) -> PreviewApp:
    """From a notebook cell: snapshot now (errors are raised in the cell), draw the preview, run in the background
    on the kernel's loop (widget updates arrive as the run goes)."""
    tool = authoring.current()
    snap = authoring.snapshot(tool)
    # The tool app logs every service call for the server's log; in a notebook that would be the cell's output.
    logging.getLogger("skriptoteket.tool_app").setLevel(logging.WARNING)
    app = build_preview(authoring, tool, snap)
    display(app.view)
    task = asyncio.ensure_future(open_preview(authoring, sample=sample, run=run, app=app, tool=tool))
    app.task = task
    return app


def cleanup_dirs(*paths: str) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
