"""The AI assistant in the authoring notebook (docs/ai.md): a panel and magics over the service's AI endpoints.

    %load_ext runner_kernel.authoring.assistant   # (or through runner_kernel.authoring, see register())
    %skr_ai                        # the assistant panel (or one line: "AI assistance is off.")
    %skr_ai status                 # which capabilities are on
    %skr_ai explain                # explain the last failed preview run
    %%skr_ai edit                  # the cell's text is the instruction: a proposed change as a diff
    Make the group size a setting
    %%skr_ai generate              # the cell's text describes a tool: all its cells, as a diff to accept
    %skr_ai complete [LINE]        # continue the source at its end (or at the end of source line LINE): a diff

Every answer streams in as the model writes it. A proposed change is shown as a unified diff per cell and
changes nothing until the author presses **Accept**; then the tagged cells (``skr-source``,
``skr-input-schema``, ``skr-settings-schema``, ``skr-instructions``) are updated on screen and in this kernel
(so the preview and ``skr.save()`` use them at once). A change whose base no longer matches the cell (the author
edited it meanwhile) is refused, never merged blindly.

The assistant talks only to the Skriptoteket service, with the author's identity (the authoring library's
client and token); the model's key stays in the service. With every capability off, nothing here gets in the
way: the panel and the magics say so in one line.

For the preview: ``explain_failure_widget(outcome, skr)`` returns an "Explain this failure" button (with its
answer area) for a failed run's outcome, or ``None`` when explaining is off.
"""

from __future__ import annotations

import hashlib
import html
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import httpx

from skriptoteket_ext.i18n import translator

from .notebook_format import INPUT_SCHEMA, INSTRUCTIONS, SETTINGS_SCHEMA, SOURCE
from .service import AuthoringError

# a tool part (the service's field name) -> the authoring cell tag, and the cell magic of a code cell
FIELD_TAGS = {"source": SOURCE, "input_schema": INPUT_SCHEMA, "settings_schema": SETTINGS_SCHEMA,
              "usage_instructions": INSTRUCTIONS}
CELL_MAGICS = {SOURCE: "%%skr_source", INPUT_SCHEMA: "%%skr_input_schema", SETTINGS_SCHEMA: "%%skr_settings_schema"}
OFF_LINE = "AI assistance is off."

CSS = """
.skr-ai { border-left: 4px solid #6b5bd2; padding: 4px 10px; margin: 6px 0; }
.skr-ai-answer { white-space: pre-wrap; font-size: 13px; background: #f7f6ff; border-radius: 4px; padding: 6px; }
.skr-ai-diff { font-size: 12px; background: #f6f6f6; border: 1px solid #ddd; border-radius: 4px; padding: 6px;
  max-height: 420px; overflow: auto; }
.skr-ai-diff .add { color: #1a6b1a; } .skr-ai-diff .del { color: #a3261c; } .skr-ai-diff .hunk { color: #6b5bd2; }
.skr-ai-error { color: #a3261c; } .skr-ai-off { color: #666; font-style: italic; }
"""


def sha256(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------ the service


@dataclass
class Answer:
    """What the service answered: the streamed text, then the result (or the error envelope)."""

    text: str = ""
    result: dict | None = None
    error: dict | None = None  # {"code", "message", "details"}
    chunks: int = 0

    @property
    def ok(self) -> bool:
        return self.result is not None and self.error is None


class AssistantClient:
    """The service's AI endpoints, with the authoring library's identity (its token, URL and language)."""

    def __init__(self, api):
        self.api = api
        self._ = translator(getattr(api, "lang", "en"))
        self._status: dict | None = None

    def _headers(self, **extra) -> dict:
        return {"Authorization": f"token {self.api.token}", "Accept-Language": self.api.lang,
                "X-Correlation-ID": uuid.uuid4().hex, **extra}

    def status(self, *, refresh: bool = False) -> dict:
        """``{"enabled", "capabilities", "message"}``; an unreachable service counts as off (with why)."""
        if self._status is None or refresh:
            try:
                self._status = self.api.call("GET", "ai/status")
            except AuthoringError as exc:
                off = self._("ai.status.off")
                self._status = {"enabled": False, "capabilities": {}, "message": f"{off} ({exc.message})"}
        return self._status

    def is_on(self, capability: str) -> bool:
        return bool(((self.status().get("capabilities") or {}).get(capability) or {}).get("enabled"))

    def stream(self, path: str, body: dict) -> Iterator[tuple[str, dict]]:
        """The service's server-sent events ``(event, data)``; a refusal before the stream is one ``error``."""
        url = self.api.api_url.rstrip("/") + "/" + path.lstrip("/")
        try:
            with httpx.Client(timeout=httpx.Timeout(300.0, connect=5.0), trust_env=False) as http:
                with http.stream("POST", url, json=body, headers=self._headers(Accept="text/event-stream")) as r:
                    if r.status_code >= 400:
                        r.read()
                        try:
                            error = r.json().get("error") or {}
                        except ValueError:
                            error = {}
                        yield "error", {"error": {"code": error.get("code") or f"http_{r.status_code}",
                                                  "message": error.get("message") or r.reason_phrase,
                                                  "details": error.get("details") or {}}}
                        return
                    name = "message"
                    for line in r.iter_lines():
                        if line.startswith("event:"):
                            name = line[6:].strip()
                        elif line.startswith("data:"):
                            yield name, json.loads(line[5:].strip())
        except httpx.HTTPError as exc:
            yield "error", {"error": {"code": "service_unavailable",
                                      "message": self._("ai.nb.unreachable", reason=exc), "details": {}}}

    def ask(self, path: str, body: dict, on_text: Callable[[str], None] | None = None) -> Answer:
        answer = Answer()
        for event, data in self.stream(path, {**body, "stream": True}):
            if event == "delta":
                answer.text += data.get("text", "")
                answer.chunks += 1
                if on_text:
                    on_text(answer.text)
            elif event == "result":
                answer.result = data
            elif event == "error":
                answer.error = data.get("error") or {"code": "error", "message": "error"}
        if answer.result is None and answer.error is None:
            answer.error = {"code": "no_answer", "message": self._("ai.nb.ended_early"), "details": {}}
        return answer


# ------------------------------------------------------------------------------------------ cells


def cell_texts(skr) -> dict[str, Any]:
    """The tool's current parts as the kernel sees them (saved notebook + cells run since), for the service."""
    tool = skr.current()
    return {"source": tool.source, "input_schema": tool.input_schema, "settings_schema": tool.settings_schema,
            "usage_instructions": tool.instructions or "", "entrypoint": tool.meta.get("entrypoint") or "run_tool",
            "_tool_id": tool.meta.get("id")}


def _value(text: str | None):
    from skriptoteket_ext.ai.capabilities import parse_schema_text

    return parse_schema_text(text, "input_schema")[0]


def still_applies(change: dict, now: dict) -> bool:
    """Does the proposal's base still equal the cell? (Schemas: the same value, however formatted.)"""
    field_name = change["field"]
    current = now.get(field_name)
    if field_name.endswith("_schema"):
        base = change.get("base_value", "__unknown__")
        if base != "__unknown__":
            return base == current
        return True
    return sha256(current or "") == change.get("base_sha256")


def update_cells_js(changes: list[dict], lang: str = "en") -> str:
    """JavaScript for the notebook page: put each accepted text into its tagged cell, keeping the cell magic line.

    JupyterLab 4 (the lab server runs with ``--LabApp.expose_app_in_browser``, so ``window.jupyterapp`` exists):
    the notebook that holds this output is found among the app's widgets, and its cells by their ``skr-*`` tag
    in the document model, so a cell that is not rendered (the notebook is windowed) is updated too, and the
    notebook is marked as changed like any edit (Ctrl-S saves it). A part without a cell gets a new tagged cell.
    Without the app object, the cell's CodeMirror editor is used (found by its ``%%skr_…`` magic line or, for the
    instructions, by its text), which works for cells on screen. A cell whose text is no longer the proposal's
    base (the author typed meanwhile) is left alone and reported; the report is shown under the Accept button."""
    items = []
    for c in changes:
        tag = FIELD_TAGS[c["field"]]
        items.append({"tag": tag, "magic": CELL_MAGICS.get(tag), "base": c.get("base_text"),
                      "schema": c["field"].endswith("_schema"), "text": c["proposed"]})
    _ = translator(lang)
    words = {"updated": _("ai.nb.cell_updated"), "new": _("ai.nb.cell_new"), "edited": _("ai.nb.cell_edited"),
             "missing": _("ai.nb.cell_missing"), "failed": _("ai.nb.cells_failed")}
    return _CELLS_JS.replace("__ITEMS__", json.dumps(items)).replace("__WORDS__", json.dumps(words))


_CELLS_JS = r"""
(function(element, items, words){
  const TOOL_TAGS = ['skr-tool', 'skr-instructions', 'skr-source', 'skr-input-schema', 'skr-settings-schema'];
  function split(text){  // [the magic line with its newline, the body]
    const nl = text.indexOf('\n');
    const first = nl < 0 ? text : text.slice(0, nl);
    if (!first.trim().startsWith('%%')) return ['', text];
    return nl < 0 ? [text + '\n', ''] : [text.slice(0, nl + 1), text.slice(nl + 1)];
  }
  function unchanged(item, body){
    if (item.base === null || item.base === undefined) return true;
    if (item.schema) {
      try { return JSON.stringify(JSON.parse(body)) === JSON.stringify(JSON.parse(item.base)); }
      catch (e) { return true; }  // a Python literal: the kernel compared the values already
    }
    return body.trim() === item.base.trim();
  }
  function tagsOf(cell){
    const tags = cell.getMetadata ? cell.getMetadata('tags') : (cell.metadata || {}).tags;
    return Array.isArray(tags) ? tags : [];
  }
  function notebookOf(app){
    const isNotebook = w => w && w.content && w.content.model && w.content.model.cells;
    for (const w of app.shell.widgets('main')) {
      if (isNotebook(w) && element && w.node.contains(element)) return w.content;
    }
    return isNotebook(app.shell.currentWidget) ? app.shell.currentWidget.content : null;
  }
  function byModel(notebook){
    const model = notebook.model, cells = model.cells, report = [];
    for (const item of items) {
      let found = null, last = -1;
      for (let i = 0; i < cells.length; i++) {
        const tags = tagsOf(cells.get(i));
        if (tags.some(t => TOOL_TAGS.includes(t))) last = i;
        if (found === null && tags.includes(item.tag)) found = cells.get(i);
      }
      const text = item.text.replace(/\n$/, '');
      if (found === null) {
        model.sharedModel.insertCell(last < 0 ? cells.length : last + 1, {
          cell_type: item.magic ? 'code' : 'markdown', source: (item.magic ? item.magic + '\n' : '') + text,
          metadata: {tags: [item.tag]}});
        report.push(item.tag + ': ' + words.new);
        continue;
      }
      const [head, body] = split(found.sharedModel.getSource());
      if (!unchanged(item, body)) { report.push(item.tag + ': ' + words.edited); continue; }
      found.sharedModel.setSource((head || (item.magic ? item.magic + '\n' : '')) + text);
      report.push(item.tag + ': ' + words.updated);
    }
    return report;
  }
  function viewOf(cell){
    const content = cell.querySelector('.cm-content');
    const tile = content && (content.cmTile || content.cmView);
    return tile ? (tile.root ? tile.root.view : tile.view) || null : null;
  }
  function byEditors(){
    const root = (element && element.closest && element.closest('.jp-Notebook')) || document.querySelector('.jp-Notebook');
    const cells = root ? Array.from(root.querySelectorAll('.jp-Cell')) : [];
    const report = [];
    for (const item of items) {
      let outcome = words.missing;
      for (const cell of cells) {
        const view = viewOf(cell);
        if (!view) continue;
        const [head, body] = split(view.state.doc.toString());
        const mine = item.magic ? head.trim() === item.magic : (item.base || '').trim() !== '' && unchanged(item, body);
        if (!mine) continue;
        if (!unchanged(item, body)) { outcome = words.edited; break; }
        view.dispatch({changes: {from: 0, to: view.state.doc.length, insert: head + item.text.replace(/\n$/, '')}});
        outcome = words.updated; break;
      }
      report.push(item.tag + ': ' + outcome);
    }
    return report;
  }
  function run(){
    let report;
    try {
      const notebook = window.jupyterapp ? notebookOf(window.jupyterapp) : null;
      report = notebook ? byModel(notebook) : byEditors();
    } catch (e) {
      report = [words.failed + ' (' + e + ')'];
    }
    if (element) {
      const note = document.createElement('div');
      note.className = 'skr-ai-applied';
      note.textContent = report.join('; ');
      element.appendChild(note);
    }
  }
  setTimeout(run, 0);  // the output is attached to its notebook after this script ran
})(typeof element !== 'undefined' ? (element.jquery ? element[0] : element) : null, __ITEMS__, __WORDS__);
"""


def cursor_at(source: str, line: int | None, lang: str = "en") -> int:
    """The offset of the end of ``line`` (1-based, before its newline) in ``source``; its end without a line."""
    if not line:
        return len(source)
    lines = source.splitlines(keepends=True)
    if not 1 <= line <= len(lines):
        raise AuthoringError(0, "bad_line", translator(lang)("ai.nb.bad_line", count=len(lines), line=line))
    end = sum(len(x) for x in lines[:line])
    return end - (len(lines[line - 1]) - len(lines[line - 1].rstrip("\r\n")))


def diff_html(changes: list[dict]) -> str:
    parts = []
    for c in changes:
        lines = []
        for line in c["diff"].splitlines():
            cls = "hunk" if line.startswith("@@") else "add" if line.startswith("+") else "del" if line.startswith("-") else ""
            lines.append(f'<span class="{cls}">{html.escape(line)}</span>' if cls else html.escape(line))
        parts.append(f'<div class="skr-ai-change" data-field="{html.escape(c["field"])}"><b>{html.escape(FIELD_TAGS[c["field"]])}</b>'
                     f'<pre class="skr-ai-diff">{chr(10).join(lines)}</pre></div>')
    return "".join(parts)


def local_changes(cells: dict[str, str], now: dict) -> list[dict]:
    """Diffs from the current parts to whole new cells (a generated tool), in the service's diff format."""
    from skriptoteket_ext.ai.capabilities import schema_text
    from skriptoteket_ext.ai.diff import make_diff

    out = []
    for field_name in FIELD_TAGS:
        new = cells.get(field_name)
        if new is None:
            continue
        old = now.get(field_name)
        old_text = schema_text(old) if field_name.endswith("_schema") else (old or "")
        if field_name.endswith("_schema") and _value(new) == old:
            continue
        if old_text == new:
            continue
        out.append({"field": field_name, "diff": make_diff(old_text, new, field_name), "proposed": new,
                    "base_sha256": sha256(old_text)})
    return out


# ------------------------------------------------------------------------------------------ the panel


@dataclass
class Proposal:
    """A change waiting for the author's decision."""

    changes: list[dict]
    explanation: str = ""
    decided: str | None = None  # "accepted" | "rejected"
    notes: list[str] = field(default_factory=list)


class Assistant:
    """One assistant per kernel, over the authoring session ``skr``."""

    def __init__(self, skr):
        self.skr = skr
        self.client = AssistantClient(skr.api)
        self._ = self.client._
        self.proposal: Proposal | None = None
        self.last_answer: Answer | None = None
        self._display_js: Callable[[str], None] | None = None

    # ---- plain API (also used by the widgets) -------------------------------------------------------------

    def status_line(self) -> str:
        status = self.client.status(refresh=True)
        return status.get("message") or (self._("ai.status.off") if not status.get("enabled") else "")

    def _tool_id(self) -> int:
        return self.skr._tool_id(self.skr.current())

    def _now(self) -> dict:
        now = cell_texts(self.skr)
        now.pop("_tool_id", None)
        return now

    def _with_bases(self, changes: list[dict], now: dict) -> list[dict]:
        from skriptoteket_ext.ai.capabilities import schema_text

        for c in changes:
            current = now.get(c["field"])
            if c["field"].endswith("_schema"):
                c["base_value"] = current
                c["base_text"] = schema_text(current)
            else:
                c["base_text"] = current or ""
        return changes

    def propose_edit(self, instruction: str, on_text: Callable[[str], None] | None = None) -> Answer:
        now = self._now()
        answer = self.client.ask(f"tools/{self._tool_id()}/ai/edit", {"instruction": instruction, "current": now},
                                 on_text)
        self._offer(answer, now)
        return answer

    def explain(self, error: str, logs: str = "", on_text: Callable[[str], None] | None = None) -> Answer:
        now = self._now()
        answer = self.client.ask(f"tools/{self._tool_id()}/ai/explain",
                                 {"error": error or "(no message)", "logs": logs[-20000:], "current": now}, on_text)
        self._offer(answer, now)
        return answer

    def generate(self, description: str, on_text: Callable[[str], None] | None = None) -> Answer:
        answer = self.client.ask("ai/generate", {"description": description}, on_text)
        self.last_answer = answer
        self.proposal = None
        if answer.ok:
            now = self._now()
            changes = self._with_bases(local_changes(answer.result["cells"], now), now)
            self.proposal = Proposal(changes, answer.result.get("explanation", "")) if changes else None
        return answer

    def complete(self, source: str, cursor: int | None = None) -> str:
        """The code the model would insert into ``source`` at ``cursor`` (default: the end)."""
        answer = self.client.ask(f"tools/{self._tool_id()}/ai/complete",
                                 {"source": source, "cursor": len(source) if cursor is None else cursor})
        if not answer.ok:
            raise AuthoringError(0, answer.error["code"], answer.error["message"])
        return answer.result["completion"]

    def propose_completion(self, line: int | None = None, on_text: Callable[[str], None] | None = None) -> Answer:
        """Complete the tool's source where the author stopped writing: at its end, or at the end of source line
        ``line`` (1-based). The completed source is offered like an edit: a diff to accept."""
        now = self._now()
        source = now.get("source") or ""
        cursor = cursor_at(source, line, self.client.api.lang)
        answer = self.client.ask(f"tools/{self._tool_id()}/ai/complete", {"source": source, "cursor": cursor},
                                 on_text)
        self.last_answer = answer
        self.proposal = None
        if answer.ok and answer.result.get("completion"):
            completed = source[:cursor] + answer.result["completion"] + source[cursor:]
            changes = self._with_bases(local_changes({"source": completed}, now), now)
            self.proposal = Proposal(changes) if changes else None
        return answer

    def _offer(self, answer: Answer, now: dict) -> None:
        self.last_answer = answer
        self.proposal = None
        if answer.ok and answer.result.get("changes"):
            self.proposal = Proposal(self._with_bases(answer.result["changes"], now),
                                     answer.result.get("explanation", ""))

    def accept(self) -> list[str]:
        """Apply the waiting proposal: in this kernel (registered cells) and on screen. Returns notes."""
        proposal = self.proposal
        if proposal is None or proposal.decided:
            return [self._("ai.nb.nothing_to_accept")]
        now = self._now()
        stale = [c["field"] for c in proposal.changes if not still_applies(c, now)]
        if stale:
            proposal.decided = "rejected"
            return [self._("ai.nb.stale", cells=", ".join(FIELD_TAGS[f] for f in stale))]
        notes = []
        for c in proposal.changes:
            self.skr.register(FIELD_TAGS[c["field"]], c["proposed"])
            notes.append(self._("ai.nb.updated", cell=FIELD_TAGS[c["field"]]))
        self._show_js(update_cells_js(proposal.changes, self.client.api.lang))
        proposal.decided = "accepted"
        return notes

    def reject(self) -> None:
        if self.proposal is not None and not self.proposal.decided:
            self.proposal.decided = "rejected"

    def _show_js(self, code: str) -> None:
        if self._display_js is not None:
            self._display_js(code)
            return
        try:
            from IPython.display import Javascript, display

            display(Javascript(code))
        except ImportError:
            pass

    # ---- widgets --------------------------------------------------------------------------------------------

    def panel(self, mode: str = "edit", text: str = "", *, run: bool = False):
        """The assistant panel: ask, watch the answer stream in, review the diff, accept or reject."""
        import ipywidgets as widgets

        status = self.client.status(refresh=True)
        if not status.get("enabled"):
            line = status.get("message") or self._("ai.status.off")
            off = widgets.HTML(f'<div class="skr-ai-off">{html.escape(line)}</div>')
            off.add_class("skr-ai-status")
            return off
        caps = status.get("capabilities") or {}
        first_line = int(text) if mode == "complete" and text.strip().isdigit() else None  # %skr_ai complete N
        prompt = widgets.Textarea(value="" if mode == "complete" else text, placeholder=self._("ai.nb.prompt"),
                                  layout={"width": "100%", "height": "70px"})
        prompt.add_class("skr-ai-prompt")
        _ = self._
        ask = widgets.Button(description=_("ai.nb.propose"), button_style="primary",
                             disabled=not (caps.get("edit") or {}).get("enabled"))
        ask.add_class("skr-ai-ask")
        generate = widgets.Button(description=_("ai.nb.generate"), disabled=not (caps.get("generate") or {}).get("enabled"))
        generate.add_class("skr-ai-generate")
        complete = widgets.Button(description=_("ai.nb.complete"), tooltip=_("ai.nb.complete_tip"),
                                  disabled=not (caps.get("complete") or {}).get("enabled"))
        complete.add_class("skr-ai-complete")
        answer = widgets.HTML("")
        answer.add_class("skr-ai-answer-box")
        diff = widgets.HTML("")
        diff.add_class("skr-ai-diff-box")
        accept = widgets.Button(description=_("ai.nb.accept"), button_style="success", layout={"display": "none"})
        accept.add_class("skr-ai-accept")
        reject = widgets.Button(description=_("ai.nb.reject"), layout={"display": "none"})
        reject.add_class("skr-ai-reject")
        js_out = widgets.Output()
        result_note = widgets.HTML("")
        result_note.add_class("skr-ai-result")
        self._display_js = lambda code: _js_into(js_out, code)

        def show_text(text_so_far: str) -> None:
            answer.value = f'<div class="skr-ai-answer">{html.escape(text_so_far)}</div>'

        def finish(ans: Answer) -> None:
            if not ans.ok:
                answer.value += f'<div class="skr-ai-error">{html.escape(ans.error["message"])}</div>'
                return
            if self.proposal is None:
                result_note.value = f"<i>{html.escape(_('ai.nb.no_change'))}</i>"
                return
            if self.proposal.explanation and not ans.text:
                show_text(self.proposal.explanation)
            diff.value = diff_html(self.proposal.changes)
            accept.layout.display = reject.layout.display = None

        def busy(flag: bool) -> None:
            ask.disabled = generate.disabled = complete.disabled = flag
            if flag:
                diff.value = result_note.value = ""
                accept.layout.display = reject.layout.display = "none"

        def on_ask(_b=None, kind: str = mode, at_line: int | None = None) -> None:
            busy(True)
            try:
                show_text("…")
                if kind == "complete":
                    ans = self.propose_completion(at_line, show_text)
                else:
                    ans = (self.generate if kind == "generate" else self.propose_edit)(prompt.value, show_text)
                finish(ans)
            except Exception as exc:  # noqa: BLE001 - shown to the author, the notebook keeps working
                answer.value += f'<div class="skr-ai-error">{html.escape(str(exc))}</div>'
            finally:
                ask.disabled = not (caps.get("edit") or {}).get("enabled")
                generate.disabled = not (caps.get("generate") or {}).get("enabled")
                complete.disabled = not (caps.get("complete") or {}).get("enabled")

        def on_accept(_b) -> None:
            notes = self.accept()
            accept.layout.display = reject.layout.display = "none"
            result_note.value = f'<div class="skr-ai-accepted">{html.escape("; ".join(notes))}</div>'

        def on_reject(_b) -> None:
            self.reject()
            accept.layout.display = reject.layout.display = "none"
            result_note.value = f'<div class="skr-ai-rejected">{html.escape(_("ai.nb.rejected"))}</div>'

        ask.on_click(lambda b: on_ask(b, "edit"))
        generate.on_click(lambda b: on_ask(b, "generate"))
        complete.on_click(lambda b: on_ask(b, "complete"))
        accept.on_click(on_accept)
        reject.on_click(on_reject)
        line = widgets.HTML(f'<div class="skr-ai-status-line">{html.escape(status.get("message", ""))}</div>')
        box = widgets.VBox([widgets.HTML(f"<style>{CSS}</style>"), line, prompt,
                            widgets.HBox([ask, generate, complete]), answer, diff, widgets.HBox([accept, reject]),
                            result_note, js_out])
        box.add_class("skr-ai")
        box.add_class("skr-ai-panel")
        box.ask = on_ask  # for magics and tests
        if run and (text.strip() or mode == "complete"):
            on_ask(None, mode, first_line)
        return box

    def explain_widget(self, error: str, logs: str = ""):
        """An "Explain this failure" button and its answer (with a fix to accept, if the model proposes one)."""
        import ipywidgets as widgets

        if not self.client.is_on("explain"):
            return None
        button = widgets.Button(description=self._("ai.nb.explain"), icon="question")
        button.add_class("skr-ai-explain")
        answer = widgets.HTML("")
        diff = widgets.HTML("")
        accept = widgets.Button(description=self._("ai.nb.accept_fix"), button_style="success",
                                layout={"display": "none"})
        accept.add_class("skr-ai-accept")
        note = widgets.HTML("")
        js_out = widgets.Output()

        def show(text: str) -> None:
            answer.value = f'<div class="skr-ai-answer">{html.escape(text)}</div>'

        def on_click(_b) -> None:
            button.disabled = True
            self._display_js = lambda code: _js_into(js_out, code)
            ans = self.explain(error, logs, show)
            button.disabled = False
            if not ans.ok:
                answer.value += f'<div class="skr-ai-error">{html.escape(ans.error["message"])}</div>'
            elif self.proposal:
                diff.value = diff_html(self.proposal.changes)
                accept.layout.display = None

        def on_accept(_b) -> None:
            note.value = html.escape("; ".join(self.accept()))
            accept.layout.display = "none"

        button.on_click(on_click)
        accept.on_click(on_accept)
        box = widgets.VBox([widgets.HTML(f"<style>{CSS}</style>"), button, answer, diff, accept, note, js_out])
        box.add_class("skr-ai")
        return box


def _js_into(output, code: str) -> None:
    from IPython.display import Javascript, display

    with output:
        display(Javascript(code))


# ------------------------------------------------------------------------------------------ the preview's hook


def failure_of(outcome: dict | None) -> tuple[str, str] | None:
    """``(error, logs)`` of a failed or timed-out run outcome (the runner's/preview's dict), else ``None``."""
    if not outcome:
        return None
    envelope = outcome.get("envelope") or {}
    if envelope.get("status") not in ("failed", "timed_out"):
        return None
    logs = "\n".join(x for x in (outcome.get("traceback"), outcome.get("stderr")) if x)
    return envelope.get("error_summary") or envelope.get("status"), logs


def explain_failure_widget(outcome: dict | None, skr=None):
    """For the preview: the "Explain this failure" widget for a failed run, or ``None`` (not failed, or
    explaining is off — then nothing is shown; the assistant panel says "AI assistance is off" once)."""
    failure = failure_of(outcome)
    if failure is None:
        return None
    try:
        return get_assistant(skr).explain_widget(*failure)
    except Exception:  # noqa: BLE001 - the preview must never break because of the assistant
        return None


# ------------------------------------------------------------------------------------------ magics

_assistant: Assistant | None = None


def get_assistant(skr=None) -> Assistant:
    global _assistant
    if skr is None:
        from . import get_authoring

        skr = get_authoring()
    if _assistant is None or _assistant.skr is not skr:
        _assistant = Assistant(skr)
    return _assistant


def skr_ai(line: str, cell: str | None = None):
    """``%skr_ai [status|explain|edit|generate|complete [LINE]]`` and ``%%skr_ai edit|generate`` (the cell is the
    request)."""
    from IPython.display import HTML, display

    assistant = get_assistant()
    words = line.split(None, 1)
    command = words[0] if words else ""
    rest = (words[1] if len(words) > 1 else "") + ("\n" + cell if cell else "")
    if command == "status":
        print(assistant.status_line())
        return None
    if command == "explain":
        previews = getattr(assistant.skr, "previews", [])
        outcome = getattr(previews[-1], "last_outcome", None) if previews else None
        failure = failure_of(outcome)
        if failure is None and not rest.strip():
            print(assistant._("ai.nb.no_failure"))
            return None
        widget = assistant.explain_widget(*(failure or (rest.strip(), "")))
        if widget is None:
            line = assistant.status_line() or assistant._("ai.status.off")
            display(HTML(f'<div class="skr-ai-off">{html.escape(line)}</div>'))
            return None
        display(widget)
        widget.children[1].click()
        return None
    if command == "complete":
        if rest.strip() and not rest.strip().isdigit():
            print(assistant._("ai.nb.complete_usage"))
            return None
        display(assistant.panel("complete", rest.strip(), run=True))
        return None
    if command in ("edit", "generate"):
        panel = assistant.panel(command, rest.strip(), run=bool(rest.strip()))
        display(panel)
        return None
    display(assistant.panel())
    return None


def register(ipython, skr=None) -> None:
    """Register ``%skr_ai`` / ``%%skr_ai`` (the authoring extension may call this from its load_ipython_extension)."""
    if skr is not None:
        get_assistant(skr)
    ipython.register_magic_function(lambda line, cell=None: skr_ai(line, cell), "line_cell", "skr_ai")


def load_ipython_extension(ipython) -> None:
    from . import get_authoring

    register(ipython, get_authoring())
