"""``skriptoteket check NOTEBOOK_OR_DIR…``: check authoring notebooks headless, without a hub (docs/authoring.md).

For every notebook (a directory is searched recursively for ``*.ipynb`` with a ``skr-source`` cell):

1. the format (docs/authoring-format.md, ``runner_kernel.authoring.notebook_format``);
2. the schemas, through the contract (the same functions the service uses on save), and the source's syntax;
3. each ``skr-sample`` as a sandbox run through the real runner (a local warm pool of fresh, limited kernels,
   sandbox limits): inputs and settings normalized as the service does, the result normalized by the contract's
   normalizer, then each follow-up action validated against the actions the previous run offered and run with its
   state and the sample's files (as session files); the last payload must meet ``expect`` (status ``succeeded`` if
   the sample names none);
4. the notebook's ``skr-test`` cells, executed by nbclient in one fresh kernel for the whole check (never in this
   process), with ``results``, ``runs`` and ``artifacts`` defined as in docs/authoring-format.md.

Every problem is one line ``file, cell N, /json/pointer: message``; the exit status is 1 if there is any, so an
author can put this in their own CI.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .contract import DEFAULT_CAPS, normalize_inputs, normalize_result, validate_action_input
from .contract import validate_input_schema, validate_settings_schema


@dataclass
class Problem:
    file: str
    cell: int | None  # 1-based cell number in the notebook, when known
    pointer: str  # a JSON pointer into the tool (/input_schema/0/kind, /samples/0/inputs/title, /source...)
    message: str

    def __str__(self) -> str:
        where = self.file + (f", cell {self.cell}" if self.cell else "")
        return f"{where}, {self.pointer or '/'}: {self.message}"


@dataclass
class NotebookResult:
    path: Path
    tool: Any = None
    cells: dict[str, list[int]] = field(default_factory=dict)  # tag -> cell numbers
    problems: list[Problem] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def problem(self, tag: str | None, pointer: str, message: str, index: int = 0) -> None:
        numbers = self.cells.get(tag or "", [])
        cell = numbers[min(index, len(numbers) - 1)] if numbers else None
        self.problems.append(Problem(str(self.path), cell, pointer, message))


# ------------------------------------------------------------------------------------------ finding notebooks


def find_notebooks(targets: list[str]) -> list[Path]:
    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            for candidate in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" in candidate.parts:
                    continue
                if '"skr-source"' in candidate.read_text(encoding="utf-8", errors="replace"):
                    found.append(candidate)
        else:
            found.append(path)
    return found


def _cell_numbers(path: Path) -> dict[str, list[int]]:
    import nbformat

    numbers: dict[str, list[int]] = {}
    try:
        node = nbformat.read(str(path), as_version=4)
    except Exception:  # noqa: BLE001 - the reader reports it properly
        return numbers
    for n, cell in enumerate(node.cells, start=1):
        for tag in cell.get("metadata", {}).get("tags") or []:
            if tag.startswith("skr-"):
                numbers.setdefault(tag, []).append(n)
    return numbers


# ------------------------------------------------------------------------------------------ static checks


def check_static(result: NotebookResult) -> bool:
    """Format, schemas and syntax. Returns False when the notebook cannot be run at all."""
    from runner_kernel.authoring.notebook_format import NotebookFormatError, read_tool_notebook

    result.cells = _cell_numbers(result.path)
    try:
        tool = read_tool_notebook(result.path)
    except (NotebookFormatError, OSError) as exc:
        result.problems.append(Problem(str(result.path), None, "", f"not an authoring notebook: {exc}"))
        return False
    result.tool = tool
    for tag, name, schema, check in (("skr-input-schema", "input_schema", tool.input_schema, validate_input_schema),
                                     ("skr-settings-schema", "settings_schema", tool.settings_schema,
                                      validate_settings_schema)):
        for issue in check(schema):
            result.problem(tag, f"/{name}{issue.path}", issue.to_dict().get("message", issue.code))
    try:
        compile(tool.source, "tool.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        result.problem("skr-source", "/source", f"syntax error, line {exc.lineno}, column {exc.offset}: {exc.msg}")
        return False
    except ValueError as exc:
        result.problem("skr-source", "/source", str(exc))
        return False
    return not any(p.pointer.startswith(("/input_schema", "/settings_schema")) for p in result.problems)


# ------------------------------------------------------------------------------------------ sample runs


def _issues_text(issues) -> str:
    return "; ".join(f"{i.path or '/'}: {i.to_dict().get('message', i.code)}" for i in issues)


async def run_sample(runner, tool, sample: dict, index: int, result: NotebookResult, limits) -> None:
    """One sample: its first run and follow-up actions, as the service and the tool app would do them."""
    from runner_kernel.runner import RunRequest

    where = f"/samples/{index}"
    name = sample["name"]
    files = []
    for rel in sample["files"]:
        try:
            path = tool.sample_path(rel)
        except ValueError as exc:
            result.problem("skr-sample", f"{where}/files", str(exc))
            return
        if not path.is_file():
            result.problem("skr-sample", f"{where}/files", f"sample {name!r}: file {rel!r} not found")
            return
        files.append((path.name, str(path)))
    settings, issues = normalize_inputs(tool.settings_schema or [], sample["settings"], 0, settings=True)
    if issues:
        result.problem("skr-sample", f"{where}/settings", f"sample {name!r}: {_issues_text(issues)}")
        return
    inputs, issues = normalize_inputs(tool.input_schema or [], sample["inputs"], len(files))
    if issues:
        result.problem("skr-sample", f"{where}/inputs", f"sample {name!r}: {_issues_text(issues)}")
        return

    payloads, files_out = [], {}
    action = None
    steps = [None, *sample["actions"]]
    for step_no, step in enumerate(steps):
        if step is not None:
            previous = payloads[-1]
            values, issues = validate_action_input(previous["next_actions"], step["action_id"], step.get("input"))
            if issues:
                result.problem("skr-sample", f"{where}/actions/{step_no - 1}",
                               f"sample {name!r}: action {step['action_id']!r} refused: {_issues_text(issues)}")
                break
            action = {"action_id": step["action_id"], "input": values,
                      "state": previous["state"] if isinstance(previous.get("state"), dict) else {}}
        with tempfile.TemporaryDirectory(prefix="skr-check-") as artifacts_dir:
            outcome = await runner.run(RunRequest(
                source=tool.source, entrypoint=tool.meta.get("entrypoint") or "run_tool", inputs=inputs,
                files=files, settings=settings, action=action, limits=limits, artifacts_dir=artifacts_dir))
            payload = normalize_result(_with_output_paths(outcome.envelope), DEFAULT_CAPS)
            result.timings.setdefault("runs", []).append({k: round(v, 3) for k, v in outcome.timings.items()})
            for artifact in payload["artifacts"]:
                source = outcome.artifact_files.get(artifact["id"])
                if source and Path(source).is_file():
                    files_out[artifact["path"].removeprefix("output/")] = Path(source).read_bytes()
        payloads.append(payload)
        if payload["status"] != "succeeded" and step is None:
            break  # a failed first run offers no actions: reported below against expect, with its traceback
        if payload["status"] != "succeeded" and step is not None:
            detail = (outcome.traceback or payload.get("error_summary") or "").strip()
            result.problem("skr-sample", f"{where}/actions/{step_no - 1}",
                           f"sample {name!r}: action {step['action_id']!r} {payload['status']}: {detail}")
            break
    result.results[name], result.runs[name], result.artifacts[name] = payloads[-1], payloads, files_out
    expect = {"status": "succeeded", **sample["expect"]}
    from runner_kernel.authoring.notebook_format import check_expect

    failures = check_expect(expect, payloads[-1])
    if failures:
        tb = outcome.traceback if payloads[-1]["status"] != "succeeded" and outcome.traceback else ""
        result.problem("skr-sample", f"{where}/expect",
                       f"sample {name!r}: " + "; ".join(failures) + (f"\n{tb.rstrip()}" if tb else ""))


def _with_output_paths(envelope: dict) -> dict:
    """The runner reports artifact paths relative to ``output/``; the contract's envelope names ``output/<rel>``
    (the tool app does the same before it posts the result)."""
    artifacts = envelope.get("artifacts") if isinstance(envelope, dict) else None
    if not isinstance(artifacts, list):
        return envelope
    fixed = [{**a, "path": a["path"] if str(a.get("path", "")).startswith("output/") else "output/" + str(a.get("path", ""))}
             if isinstance(a, dict) else a for a in artifacts]
    return {**envelope, "artifacts": fixed}


# ------------------------------------------------------------------------------------------ test cells


def run_tests(results: list[NotebookResult], timeout: float = 60) -> None:
    """Every notebook's skr-test cells, in one nbclient kernel; each notebook starts from a clean namespace."""
    import nbformat
    from nbclient import NotebookClient

    # Tests read the samples' results: with a failed sample they would only repeat its failure.
    todo = [r for r in results if r.tool is not None and r.tool.tests and r.results
            and not any(p.pointer.startswith("/samples") for p in r.problems)]
    if not todo:
        return
    with tempfile.TemporaryDirectory(prefix="skr-check-tests-") as tmp:
        nb = nbformat.v4.new_notebook()
        owners: dict[int, tuple[NotebookResult, int]] = {}
        for k, result in enumerate(todo):
            data = Path(tmp) / f"data{k}.pickle"
            data.write_bytes(pickle.dumps({"results": result.results, "runs": result.runs,
                                           "artifacts": result.artifacts}))
            nb.cells.append(nbformat.v4.new_code_cell(
                "%reset -f\nimport pickle as _p\n"
                f"globals().update(_p.loads(open({str(data)!r}, 'rb').read()))\ndel _p"))
            for t, code in enumerate(result.tool.tests):
                owners[len(nb.cells)] = (result, t)
                nb.cells.append(nbformat.v4.new_code_cell(code))
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": tmp}})
        try:
            client.execute()
        except Exception as exc:  # noqa: BLE001 - the kernel could not start, or a cell hung
            for result in todo:
                result.problem("skr-test", "/tests", f"the test cells could not run: {exc}")
            return
        for index, (result, t) in owners.items():
            for output in nb.cells[index].get("outputs", []):
                if output.get("output_type") == "error":
                    message = f"{output.get('ename')}: {output.get('evalue')}".rstrip(": ")
                    line = _failing_line(output)
                    result.problem("skr-test", f"/tests/{t}", message + (f" [{line}]" if line else ""), index=t)


def _failing_line(output) -> str:
    import re

    text = "\n".join(output.get("traceback") or [])
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("---->")]
    return lines[-1].removeprefix("---->").strip() if lines else ""


# ------------------------------------------------------------------------------------------ the command


async def check_all(paths: list[Path], *, pool_size: int = 2, tests: bool = True) -> list[NotebookResult]:
    from runner_kernel.limits import RunLimits
    from runner_kernel.pool import KernelPool
    from runner_kernel.runner import Runner

    results = [NotebookResult(path) for path in paths]
    runnable = [r for r in results if check_static(r)]
    jobs = [(r, i, s) for r in runnable for i, s in enumerate(r.tool.samples)]
    if jobs:
        limits = RunLimits.sandbox()
        async with KernelPool(size=max(1, min(pool_size, len(jobs))), limits=limits) as pool:
            runner = Runner(pool)
            gate = asyncio.Semaphore(max(1, pool_size))

            async def one(result, index, sample):
                async with gate:
                    t0 = time.perf_counter()
                    try:
                        await run_sample(runner, result.tool, sample, index, result, limits)
                    except Exception as exc:  # noqa: BLE001 - reported, the check goes on
                        result.problem("skr-sample", f"/samples/{index}", f"sample {sample['name']!r}: {exc!r}")
                    result.timings[sample["name"]] = time.perf_counter() - t0

            await asyncio.gather(*(one(*job) for job in jobs))
    if tests:
        await asyncio.to_thread(run_tests, runnable)
    return results


def main(targets: list[str], *, as_json: bool = False, pool_size: int = 2, tests: bool = True,
         out=sys.stdout) -> int:
    paths = find_notebooks(targets)
    missing = [p for p in paths if not p.exists()]
    if missing or not paths:
        print("skriptoteket check: " + (f"no such file: {missing[0]}" if missing else
              "no authoring notebooks found (cells tagged skr-source)"), file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = asyncio.run(check_all(paths, pool_size=pool_size, tests=tests))
    problems = [p for r in results for p in r.problems]
    if as_json:
        json.dump({"notebooks": [str(r.path) for r in results], "problems": [asdict(p) for p in problems],
                   "seconds": round(time.perf_counter() - t0, 2)}, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        for problem in problems:
            print(str(problem), file=out)
        samples = sum(len(r.tool.samples) for r in results if r.tool is not None)
        status = "FAILED" if problems else "ok"
        print(f"skriptoteket check: {len(results)} notebook(s), {samples} sample(s), {len(problems)} problem(s) "
              f"in {time.perf_counter() - t0:.1f} s — {status}", file=out)
    return 1 if problems else 0
