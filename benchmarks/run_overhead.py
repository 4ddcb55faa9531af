"""Per-run overhead of the pooled runner against a fresh kernel per run (nbclient) and a one-shot container.

    .venv/bin/python benchmarks/run_overhead.py [--n 30] [--image skriptoteket-runner:latest]

Two tools: a no-op, and a small realistic one (read an uploaded CSV with pandas, return a table).
(a) pooled: wall time of ``Runner.run()`` with a ready pool. The pool is refilled *between* iterations and the
    refill is awaited outside the timed region (a kernel start costs ~1-2 s of CPU that a real user does not wait
    for, as long as runs are further apart than that).
(b) nbclient: a fresh kernel per run executing equivalent notebook code (start, execute, shut down).
(c) docker: a one-shot hardened ``docker run`` of the same work, when ``docker info`` succeeds.
(d) refill: what one pool refill (start a kernel until it is warm) costs, kernels forked from the pool's fork
    server against the old exec path (a new interpreter per kernel), both pools open, refills alternating. Wall
    time is the pool's start-to-warm time; CPU is the new kernel's own CPU + the fork server's + this process's
    (which also disposes of the released kernel, the same work in both); PSS is an idle kernel's proportional
    share of memory (forked kernels share the fork server's pages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from runner_kernel.limits import RunLimits  # noqa: E402
from runner_kernel.pool import TOOLKIT_DIR, KernelPool, _cpu_seconds  # noqa: E402
from runner_kernel.runner import Runner, RunRequest  # noqa: E402

NOOP = "def run_tool(input_dir, output_dir):\n    return ''\n"
CSV_TOOL = textwrap.dedent('''
    import pandas as pd
    from skriptoteket_toolkit import list_input_files

    def run_tool(input_dir, output_dir):
        df = pd.read_csv(list_input_files()[0]["path"])
        summary = df.groupby("klass")["poang"].mean().round(1).reset_index()
        return {"outputs": [{"kind": "table", "title": "Medelpoäng per klass",
                             "columns": [{"key": c, "label": c} for c in summary.columns],
                             "rows": summary.to_dict("records")}]}
''')
CSV = "namn,klass,poang\n" + "".join(f"Elev {i},{7 + i % 3}{'ABC'[i % 3]},{(i * 37) % 100}\n" for i in range(300))

# What (b) and (c) execute: the same tool, called the way the runner's driver calls it, result printed as JSON.
NOTEBOOK_CODE = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, {toolkit!r})
    os.environ.update({env!r})
    namespace = {{"__name__": "tool"}}
    exec(compile({source!r}, "tool.py", "exec"), namespace)
    result = namespace["run_tool"]({input_dir!r}, {output_dir!r})
    print(json.dumps(result if isinstance(result, dict) else {{"outputs": [{{"kind": "html_sandboxed", "html": result}}]}}))
''')


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered) * 1000, "p95": p95 * 1000}


async def bench_pooled(tools, n, work: Path) -> dict[str, list[float]]:
    results = {}
    async with KernelPool(size=2, limits=RunLimits(timeout=60)) as pool:
        runner = Runner(pool)
        for name, (source, files) in tools.items():
            times = []
            for i in range(n + 1):
                await pool.wait_ready()  # refill done: not timed
                t0 = time.perf_counter()
                outcome = await runner.run(RunRequest(source=source, files=files, artifacts_dir=work / "art"))
                elapsed = time.perf_counter() - t0
                assert outcome.status == "succeeded", (outcome.envelope, outcome.traceback)
                if i:  # the first run warms the runner process itself (imports, code paths)
                    times.append(elapsed)
            results[name] = times
    return results


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def bench_refill(n: int) -> dict[str, dict[str, list[float]]]:
    results = {"fork server": {"wall": [], "cpu": [], "pss": []}, "exec (old)": {"wall": [], "cpu": [], "pss": []}}
    pools = {"fork server": KernelPool(size=1, limits=RunLimits(timeout=60)),
             "exec (old)": KernelPool(size=1, limits=RunLimits(timeout=60), fork_server=False)}
    try:
        for pool in pools.values():
            await pool.start(wait=True)
        for _ in range(n):
            for label, pool in pools.items():
                kernel = await pool.acquire()
                zygote = pool._zygote.pid if pool._zygote else None
                z0, p0 = (_cpu_seconds(zygote) if zygote else 0.0), time.process_time()
                pool.release(kernel)
                await pool.wait_ready()
                z1 = _cpu_seconds(zygote) if zygote else 0.0
                r = results[label]
                r["wall"].append(pool.stats["start_s_last"])
                r["cpu"].append(pool.stats["start_cpu_s_last"] + (z1 - z0) + time.process_time() - p0)
                r["pss"].append(pss_mib(next(iter(pool._live))))
    finally:
        for pool in pools.values():
            await pool.shutdown()
    return results


async def bench_nbclient(tools, n, work: Path) -> dict[str, list[float]]:
    results = {}
    for name, (source, files) in tools.items():
        input_dir, output_dir = work / "nb-input", work / "nb-output"
        for d in (input_dir, output_dir):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        manifest = []
        for fname, data in files:
            (input_dir / fname).write_bytes(data)
            manifest.append({"name": fname, "path": str(input_dir / fname), "bytes": len(data)})
        env = {"SKRIPTOTEKET_INPUT_MANIFEST": json.dumps({"files": manifest}), "SKRIPTOTEKET_INPUT_DIR": str(input_dir),
               "SKRIPTOTEKET_OUTPUT_DIR": str(output_dir)}
        code = NOTEBOOK_CODE.format(toolkit=str(TOOLKIT_DIR), env=env, source=source, input_dir=str(input_dir),
                                    output_dir=str(output_dir))
        times = []
        for _ in range(n):
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
            t0 = time.perf_counter()
            await NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(work)}}).async_execute()
            times.append(time.perf_counter() - t0)
            assert nb.cells[0].outputs[0]["text"].startswith("{"), nb.cells[0].outputs
        results[name] = times
    return results


async def quiet_stderr(coro):
    """nbclient's kernels inherit our stderr and warn about plain TCP on every start: keep the report readable."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        return await coro
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def docker_skip_reason(image: str) -> str | None:
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode != 0:
            return "no Docker engine reachable (`docker info` failed)"
    except (OSError, subprocess.TimeoutExpired):
        return "no Docker engine reachable (`docker` not found or not answering)"
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        return f"image {image} not found (build it with scripts/build-image.sh, or pass --image)"
    return None


def bench_docker(tools, n, work: Path, image: str) -> dict[str, list[float]]:
    """The replaced system's model: one hardened container per run (no network, read-only, no capabilities)."""
    results = {}
    for name, (source, files) in tools.items():
        input_dir, output_dir = work / "dk-input", work / "dk-output"
        for d in (input_dir, output_dir):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        output_dir.chmod(0o777)
        manifest = []
        for fname, data in files:
            (input_dir / fname).write_bytes(data)
            manifest.append({"name": fname, "path": f"/work/input/{fname}", "bytes": len(data)})
        shutil.copytree(TOOLKIT_DIR, work / "dk-toolkit", dirs_exist_ok=True)
        env = {"SKRIPTOTEKET_INPUT_MANIFEST": json.dumps({"files": manifest}), "SKRIPTOTEKET_INPUT_DIR": "/work/input",
               "SKRIPTOTEKET_OUTPUT_DIR": "/work/output"}
        code = NOTEBOOK_CODE.format(toolkit="/work/toolkit", env=env, source=source, input_dir="/work/input",
                                    output_dir="/work/output")
        cmd = ["docker", "run", "--rm", "--pull", "never", "--network", "none", "--read-only", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--pids-limit", "256", "--memory", "1g", "--cpus", "1",
               "--tmpfs", "/tmp", "--user", "65534:65534",
               "-v", f"{input_dir}:/work/input:ro", "-v", f"{output_dir}:/work/output",
               "-v", f"{work / 'dk-toolkit'}:/work/toolkit:ro", image, "python3", "-c", code]
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise RuntimeError(f"docker run failed: {proc.stderr[-2000:]}")
        results[name] = times
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="runs per tool and per method (default 30)")
    parser.add_argument("--image", default="skriptoteket-user:latest", help="image for (c) docker run")
    parser.add_argument("--refills", type=int, default=None, help="refills per method for (d) (default: --n)")
    args = parser.parse_args()
    tools = {"no-op": (NOOP, []), "csv-table": (CSV_TOOL, [("elever.csv", CSV.encode())])}

    with tempfile.TemporaryDirectory(prefix="skr-bench-") as tmp:
        work = Path(tmp)
        print(f"n={args.n} per tool and method; times in ms of wall clock")
        print("(a) pooled Runner.run(), pool of 2; refill awaited between iterations, outside the timed region")
        a = asyncio.run(bench_pooled(tools, args.n, work))
        print("(b) fresh kernel per run with nbclient (start + execute + shutdown)")
        b = asyncio.run(quiet_stderr(bench_nbclient(tools, args.n, work)))
        c = None
        skip = docker_skip_reason(args.image)
        if skip is None:
            print(f"(c) one-shot hardened docker run of image {args.image}")
            c = bench_docker(tools, args.n, work, args.image)
        else:
            print(f"(c) skipped: {skip}")
        refills = args.n if args.refills is None else args.refills
        print(f"(d) one pool refill, fork server against the exec path, {refills} each, alternating")
        d = asyncio.run(bench_refill(refills))

    print()
    header = f"{'tool':<10} {'method':<12} {'p50 ms':>9} {'p95 ms':>9}"
    print(header)
    print("-" * len(header))
    for name in tools:
        for label, data in (("(a) pool", a), ("(b) nbclient", b), ("(c) docker", c)):
            if data is not None:
                s = stats(data[name])
                print(f"{name:<10} {label:<12} {s['p50']:>9.1f} {s['p95']:>9.1f}")
        a50 = stats(a[name])["p50"]
        ratios = f"b/a = {stats(b[name])['p50'] / a50:.1f}x"
        if c is not None:
            ratios += f", c/a = {stats(c[name])['p50'] / a50:.1f}x"
        print(f"{name:<10} ratios of p50: {ratios}")
    noop = stats(a["no-op"])["p50"]
    goal = noop <= 30 and stats(b["no-op"])["p50"] / noop >= 25
    print(f"\ngoal (no-op pooled p50 <= 30 ms and >= 25x faster than (b)): {'met' if goal else 'NOT met'}")

    print()
    header = f"{'refill (d)':<12} {'wall p50 ms':>11} {'wall p95 ms':>11} {'CPU p50 ms':>10} {'PSS MiB':>8}"
    print(header)
    print("-" * len(header))
    for label, r in d.items():
        w, c = stats(r["wall"]), stats(r["cpu"])
        print(f"{label:<12} {w['p50']:>11.1f} {w['p95']:>11.1f} {c['p50']:>10.1f} {statistics.median(r['pss']):>8.1f}")
    fork, old = d["fork server"], d["exec (old)"]
    print(f"ratios exec/fork of p50: wall {stats(old['wall'])['p50'] / stats(fork['wall'])['p50']:.1f}x, "
          f"CPU {stats(old['cpu'])['p50'] / stats(fork['cpu'])['p50']:.1f}x")


if __name__ == "__main__":
    main()
