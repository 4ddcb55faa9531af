"""Run an authoring notebook's samples the way the platform does: inputs and action input validated by the contract,
the real runner, the service's normalizer, session files given again to action runs, and the state carried forward."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runner_kernel import Runner, RunRequest
from runner_kernel.authoring.notebook_format import ToolNotebook, check_expect
from skriptoteket_ext.contract import normalize_inputs, normalize_result, validate_action_input


@dataclass
class SampleRuns:
    results: dict = field(default_factory=dict)  # sample name -> normalized payload of its last run
    runs: dict = field(default_factory=dict)  # sample name -> [payload of every run, first run first]
    artifacts: dict = field(default_factory=dict)  # sample name -> {path relative to output/: bytes}
    problems: list = field(default_factory=list)  # what went wrong, "sample: message"
    logs: dict = field(default_factory=dict)  # sample name -> stderr/traceback of its runs (for failure messages)


def _payload(outcome) -> dict:
    envelope = dict(outcome.envelope)
    envelope["artifacts"] = [{**a, "path": "output/" + a["path"]} for a in envelope.get("artifacts", [])]
    return normalize_result(envelope)


def _issues(issues) -> str:
    return "; ".join(f"{i.path or '/'}: {i.message}" for i in issues)


async def run_samples(runner: Runner, tool: ToolNotebook, workdir: Path) -> SampleRuns:
    out = SampleRuns()
    for number, sample in enumerate(tool.samples):
        name = sample["name"]
        files = [(Path(p).name, tool.sample_path(p)) for p in sample["files"]]
        missing = [str(path) for _, path in files if not path.is_file()]
        if missing:
            out.problems.append(f"{name}: sample files missing: {missing}")
            continue
        inputs, issues = normalize_inputs(tool.input_schema, sample["inputs"], len(files))
        settings, setting_issues = normalize_inputs(tool.settings_schema or [], sample["settings"], 0, settings=True)
        if issues or setting_issues:
            out.problems.append(f"{name}: the service would refuse this run: {_issues(issues + setting_issues)}")
            continue
        entry = tool.meta.get("entrypoint") or "run_tool"
        outcome = await runner.run(RunRequest(source=tool.source, entrypoint=entry, inputs=inputs, files=files,
                                              settings=settings, artifacts_dir=workdir / f"{number}-0"))
        steps, outcomes = [_payload(outcome)], [outcome]
        for step, action in enumerate(sample["actions"], start=1):
            offered = steps[-1]["next_actions"]
            values, issues = validate_action_input(offered, action["action_id"], action["input"])
            if issues:
                out.problems.append(f"{name}: action {action['action_id']!r} refused: {_issues(issues)}")
                break
            request = RunRequest(
                source=tool.source, entrypoint=entry, files=files, settings=settings,  # session files come again
                action={"action_id": action["action_id"], "input": values, "state": steps[-1]["state"] or {}},
                artifacts_dir=workdir / f"{number}-{step}",
            )
            outcome = await runner.run(request)
            steps.append(_payload(outcome))
            outcomes.append(outcome)
        files_by_path = {}
        for payload, run in zip(steps, outcomes):
            for artifact in payload["artifacts"]:
                files_by_path[artifact["path"].removeprefix("output/")] = run.artifact_files[artifact["id"]].read_bytes()
        out.results[name], out.runs[name], out.artifacts[name] = steps[-1], steps, files_by_path
        out.logs[name] = "\n".join(filter(None, (o.traceback or o.stderr for o in outcomes)))
        out.problems += [f"{name}: {p}" for p in check_expect(sample["expect"], steps[-1])]
    return out
