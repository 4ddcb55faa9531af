"""Real tool scripts through the real runner: a warm pool of ipykernel kernels, limits and all."""

from __future__ import annotations

import asyncio
import io
import os
import textwrap

import psutil
import pytest

from runner_kernel import KernelPool, RunLimits
from runner_kernel.artifacts import artifact_id

from .conftest import PARENT_SECRETS

pytestmark = pytest.mark.timeout(120)

NOOP = "def run_tool(input_dir, output_dir):\n    return ''\n"


def tool(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


async def assert_still_serves(run):
    """After a hostile run, the pool must serve the next run normally."""
    outcome = await run(NOOP)
    assert outcome.status == "succeeded", outcome
    assert outcome.envelope["outputs"] == []


def leftovers(pool, kernel_pid):
    """Processes still alive from a finished run: its session, and (as root) processes of the runner account that
    carry this pool's directory in their environment but belong to no live kernel. Other pools may share the
    account (other tests, other user servers), so their processes do not count."""
    live = set(pool._live)
    owner_uid = pool._owner[0] if pool._owner else None
    found = []
    for p in psutil.process_iter(["pid", "uids"]):
        try:
            sid = os.getsid(p.pid)
            ours = owner_uid is not None and p.info["uids"].real == owner_uid and str(pool._base) in str(p.environ())
        except (OSError, psutil.Error):
            continue
        if sid == kernel_pid or (ours and sid not in live):
            found.append(p.pid)
    return found


async def test_normal_tool_with_inputs_files_settings_action(run):
    source = tool('''
        import json, os
        from skriptoteket_toolkit import (read_inputs, list_input_files, read_input_manifest, read_action,
                                          get_action_parts, read_memory, read_settings)

        def run_tool(input_dir, output_dir):
            files = list_input_files()
            text = open(files[0]["path"]).read()
            with open(os.path.join(output_dir, "Report 1.csv"), "w") as f:
                f.write(text.upper())
            print("rows:", len(text.splitlines()))
            return {
                "outputs": [{"kind": "json", "value": {
                    "inputs": read_inputs(), "files": [(f["name"], f["bytes"]) for f in files],
                    "manifest_names": [f["name"] for f in read_input_manifest()["files"]],
                    "action": read_action(), "parts": list(get_action_parts()), "settings": read_settings(),
                    "memory_keys": sorted(read_memory()), "cwd_is_home": os.getcwd() == os.environ["HOME"],
                    "env": {k: v for k, v in os.environ.items() if k.startswith("SKRIPTOTEKET_")},
                    "dirs": [input_dir == os.environ["SKRIPTOTEKET_INPUT_DIR"],
                             output_dir == os.environ["SKRIPTOTEKET_OUTPUT_DIR"]],
                }}],
                "next_actions": [{"action_id": "again", "label": "Again", "kind": "form", "fields": []}],
                "state": {"step": 1},
                "ignored": "other keys are ignored",
            }
    ''')
    outcome = await run(source, inputs={"title": "Klass 7B"}, files=[("elever.csv", b"a,b\n1,2\n"),
                        ("../../evil/other.txt", b"x")], settings={"lang": "sv"}, memory={"note": 1})
    assert outcome.status == "succeeded", (outcome.envelope, outcome.traceback, outcome.stderr)
    value = outcome.envelope["outputs"][0]["value"]
    assert value["inputs"] == {"title": "Klass 7B"}
    assert value["files"] == [["elever.csv", 8], ["other.txt", 1]]  # upload order, names stripped of dirs
    assert value["manifest_names"] == ["elever.csv", "other.txt"]
    assert value["action"] is None and value["parts"] == [None, {}, {}]
    assert value["settings"] == {"lang": "sv"} and value["memory_keys"] == ["note", "settings"]
    assert value["cwd_is_home"] and value["dirs"] == [True, True]
    assert set(value["env"]) == {"SKRIPTOTEKET_INPUTS", "SKRIPTOTEKET_INPUT_MANIFEST", "SKRIPTOTEKET_INPUT_DIR",
                                 "SKRIPTOTEKET_OUTPUT_DIR", "SKRIPTOTEKET_MEMORY_PATH", "SKRIPTOTEKET_ENTRYPOINT"}
    assert outcome.envelope["next_actions"][0]["action_id"] == "again"
    assert outcome.envelope["state"] == {"step": 1}
    assert "ignored" not in outcome.envelope and outcome.envelope["contract_version"] == 2
    assert outcome.stdout == "rows: 2\n"
    assert outcome.envelope["artifacts"] == [{"id": "report_1_csv", "path": "Report 1.csv", "bytes": 8}]
    assert outcome.artifact_files["report_1_csv"].read_text() == "A,B\n1,2\n"

    # The follow-up action run: read_inputs() is {} and the action arrives (also as SKRIPTOTEKET_ACTION).
    action = {"action_id": "again", "input": {"n": 2}, "state": {"step": 1}}
    outcome = await run(source.replace("files[0]", "(files or [{'path': os.devnull}])[0]"), inputs={"x": 1},
                        action=action)
    value = outcome.envelope["outputs"][0]["value"]
    assert value["inputs"] == {} and value["action"] == action
    assert value["parts"] == ["again", {"n": 2}, {"step": 1}]
    assert "SKRIPTOTEKET_ACTION" in value["env"]


async def test_string_result_is_one_html_output(run):
    outcome = await run("def run_tool(i, o):\n    return '<b>hej</b>'\n")
    assert outcome.envelope["outputs"] == [{"kind": "html_sandboxed", "html": "<b>hej</b>"}]
    assert (await run(NOOP)).envelope["outputs"] == []


async def test_infinite_loop_times_out(run):
    outcome = await run("def run_tool(i, o):\n    while True:\n        pass\n", limits=RunLimits(timeout=2))
    assert outcome.status == "timed_out"
    assert outcome.error_summary == "Execution timed out."
    assert 2 <= outcome.timings["exec_s"] < 4
    await assert_still_serves(run)


async def test_allocating_4_gib_fails_naming_the_memory_limit(run):
    outcome = await run("def run_tool(i, o):\n    data = bytearray(4 * 1024**3)\n    return 'no'\n")
    assert outcome.status == "failed"
    assert outcome.error_summary == "Execution failed: the tool exceeded the memory limit (1 GiB)."
    assert "MemoryError" in outcome.traceback
    # Growing step by step hits the same limit.
    outcome = await run("def run_tool(i, o):\n    x = []\n    while True:\n        x.append(bytearray(50 * 2**20))\n")
    assert outcome.error_summary == "Execution failed: the tool exceeded the memory limit (1 GiB)."
    await assert_still_serves(run)


async def test_fork_bomb_is_contained_and_leaves_nothing(run, pool):
    outcome = await run(tool('''
        import os, time
        def run_tool(input_dir, output_dir):
            while True:
                os.fork()
    '''))
    assert outcome.status == "failed"
    assert outcome.error_summary == "Execution failed: the tool exceeded the process limit (256 processes/threads)."
    await pool.wait_ready()
    assert leftovers(pool, outcome.kernel_pid) == []
    await assert_still_serves(run)


async def test_children_that_leave_the_session_are_killed(run, pool):
    if pool._owner is None:
        pytest.skip("escapes from the session are only hunted down when kernels run as their own account (root)")
    outcome = await run(tool('''
        import os, time
        def run_tool(input_dir, output_dir):
            for _ in range(3):
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        time.sleep(600)
                    os._exit(0)
            return "spawned"
    '''))
    assert outcome.status == "succeeded"
    await pool.wait_ready()
    assert leftovers(pool, outcome.kernel_pid) == []
    await assert_still_serves(run)


async def test_writing_1_gib_stops_at_the_disk_limit(run):
    outcome = await run(tool('''
        import os
        def run_tool(input_dir, output_dir):
            block = b"x" * (1 << 20)
            with open(os.path.join(output_dir, "big.bin"), "wb") as f:
                for _ in range(1024):
                    f.write(block)
            return "wrote 1 GiB"
    '''))
    assert outcome.status == "failed"
    assert outcome.error_summary == "Execution failed: the tool exceeded the disk limit (256 MiB written)."
    # Many files, each under the per-file limit, hit the total for the work dir.
    outcome = await run(tool('''
        import os
        def run_tool(input_dir, output_dir):
            block = b"x" * (1 << 20)
            for n in range(6):
                with open(os.path.join(output_dir, f"part{n}.bin"), "wb") as f:
                    for _ in range(100):
                        f.write(block)
            return "wrote 600 MiB"
    '''))
    assert outcome.status == "failed"
    assert outcome.error_summary == "Execution failed: the tool exceeded the disk limit (256 MiB written)."
    await assert_still_serves(run)


async def test_printing_50_mb_is_capped(run):
    outcome = await run(tool('''
        import sys
        def run_tool(input_dir, output_dir):
            print("y" * 50_000_000)
            sys.stderr.write("e" * 300_000)
            return "done"
    '''))
    assert outcome.status == "succeeded"
    kept, marker = outcome.stdout.split("\n[output truncated: ")
    assert kept == "y" * 200_000
    assert marker.startswith("49,800,001 more bytes not kept (limit 200,000 bytes)]")
    assert outcome.stderr.startswith("e" * 200_000 + "\n[output truncated: 100,000 more bytes")
    await assert_still_serves(run)


async def test_no_secret_or_parent_variable_reaches_the_tool(run):
    assert os.environ["JUPYTERHUB_API_TOKEN"] == PARENT_SECRETS["JUPYTERHUB_API_TOKEN"]
    outcome = await run(tool('''
        import os, subprocess
        def run_tool(input_dir, output_dir):
            child = subprocess.run(["env"], capture_output=True, text=True).stdout
            return {"outputs": [{"kind": "json", "value": {"env": dict(os.environ), "child": child}}]}
    '''))
    value = outcome.envelope["outputs"][0]["value"]
    for name, secret in PARENT_SECRETS.items():
        assert name not in value["env"]
        assert secret not in str(value)
    for name in value["env"]:
        assert not any(word in name.upper() for word in ("TOKEN", "SECRET", "PASSWORD", "KEY")), name
    parent_only = set(os.environ) - set(value["env"])
    assert {"JUPYTERHUB_API_TOKEN", "SOME_PARENT_VARIABLE"} <= parent_only
    assert value["env"]["HOME"].endswith("/work") and value["env"]["PYTHONPATH"].endswith("toolkit")


async def test_symlinks_and_special_files_are_not_collected(run):
    outcome = await run(tool('''
        import os
        def run_tool(input_dir, output_dir):
            os.symlink("/etc/passwd", os.path.join(output_dir, "passwd.txt"))
            os.symlink("/etc", os.path.join(output_dir, "etc"))
            os.mkfifo(os.path.join(output_dir, "pipe"))
            os.makedirs(os.path.join(output_dir, "sub/dir"))
            with open(os.path.join(output_dir, "sub/dir/Real File.TXT"), "w") as f:
                f.write("ok")
            with open(os.path.join(output_dir, "sub_dir_real_file_txt"), "w") as f:
                f.write("same id")
            return ""
    '''))
    assert outcome.status == "succeeded"
    assert outcome.envelope["artifacts"] == [
        {"id": "sub_dir_real_file_txt", "path": "sub/dir/Real File.TXT", "bytes": 2},
        {"id": "sub_dir_real_file_txt_2", "path": "sub_dir_real_file_txt", "bytes": 7},
    ]
    assert sorted(p.name for p in outcome.artifact_files.values()) == ["Real File.TXT", "sub_dir_real_file_txt"]


def test_artifact_ids():
    taken: set[str] = set()
    assert [artifact_id(p, taken) for p in ("Rapport.PDF", "rapport.pdf", "a/b-c.txt", "rapport_pdf")] == [
        "rapport_pdf", "rapport_pdf_2", "a_b_c_txt", "rapport_pdf_3"]


async def test_result_types(run):
    outcome = await run(tool('''
        import datetime, math
        def run_tool(input_dir, output_dir):
            return {"outputs": [{"kind": "json", "value": {"s": {3, 1, 2}, "t": (1, 2), "nan": math.nan,
                    "d": datetime.date(2026, 1, 2), 5: "int key"}}]}
    '''))
    assert outcome.status == "succeeded", outcome.envelope
    assert outcome.envelope["outputs"][0]["value"] == {"s": [1, 2, 3], "t": [1, 2], "nan": None,
                                                       "d": "2026-01-02", "5": "int key"}

    outcome = await run(tool('''
        class Thing:
            pass
        def run_tool(input_dir, output_dir):
            return {"outputs": [{"kind": "json", "value": Thing()}]}
    '''))
    assert outcome.status == "failed"
    assert outcome.error_summary == ("The tool's result contains a value of type Thing at "
                                     "outputs[0]['value'], which has no JSON form.")

    outcome = await run("def run_tool(i, o):\n    return {'outputs': [{'kind': 'json', 'value': b'raw'}]}\n")
    assert outcome.status == "failed"
    assert "contains bytes at outputs[0]['value']" in outcome.error_summary

    for value, name in (("42", "int"), ("[1]", "list"), ("None", "NoneType"), ("b'x'", "bytes"), ("{1, 2}", "set")):
        outcome = await run(f"def run_tool(i, o):\n    return {value}\n")
        assert outcome.status == "failed"
        assert outcome.error_summary == (f"run_tool returned {name}; it must return a dict "
                                         "(with outputs, next_actions, state) or a str.")


async def test_pandas_values_are_coerced(run):
    outcome = await run(tool('''
        import pandas as pd
        def run_tool(input_dir, output_dir):
            df = pd.DataFrame({"n": [1, 2], "x": [0.5, float("nan")]})
            return {"outputs": [{"kind": "json", "value": {"sum": df["n"].sum(), "arr": df["n"].values,
                                                            "max": df["x"].max()}}]}
    '''))
    assert outcome.status == "succeeded", outcome.envelope
    assert outcome.envelope["outputs"][0]["value"] == {"sum": 3, "arr": [1, 2], "max": 0.5}


async def test_tool_user_error_shows_its_message(run):
    for imp in ("from skriptoteket_toolkit import ToolUserError", "from tool_errors import ToolUserError"):
        outcome = await run(f"{imp}\ndef run_tool(i, o):\n    raise ToolUserError('Filen saknar kolumnen Namn.')\n")
        assert outcome.status == "failed"
        assert outcome.error_summary == "Filen saknar kolumnen Namn."


async def test_other_exception_hides_the_traceback_from_users(run):
    outcome = await run("def helper():\n    return 1 / 0\n\ndef run_tool(i, o):\n    return helper()\n")
    assert outcome.status == "failed"
    assert outcome.error_summary == "Tool execution failed (ZeroDivisionError)."
    assert 'File "tool.py", line 2, in helper' in outcome.traceback
    assert "return 1 / 0" in outcome.traceback and "_skriptoteket_driver" not in outcome.traceback
    outcome = await run("raise KeyError('at import')\n")
    assert outcome.error_summary == "Tool execution failed (KeyError)."
    outcome = await run("def other(i, o):\n    return ''\n")
    assert outcome.error_summary == "The tool defines no function named 'run_tool'."


async def test_syntax_error_reports_line_column_and_caret(run, pool):
    acquired = pool.stats["acquired"]
    outcome = await run("def run_tool(i, o):\n    x = (1 +\n    return x\n\n    y = = 2\n")
    assert outcome.status == "failed"
    assert outcome.error_summary.startswith("SyntaxError: ")
    assert "(line 2, column 9)" in outcome.error_summary
    lines = outcome.error_summary.splitlines()
    assert lines[1] == "        x = (1 +" and lines[2] == "            ^"
    outcome = await run("def run_tool(i, o):\n    y = = 2\n")
    assert outcome.error_summary.splitlines() == [
        "SyntaxError: invalid syntax (line 2, column 9)", "        y = = 2", "            ^"]
    assert pool.stats["acquired"] == acquired  # nothing was started


async def test_save_as_pdf_makes_a_real_pdf(run):
    import pypdf

    outcome = await run(tool('''
        from pdf_helper import save_as_pdf
        from skriptoteket_toolkit import save_as_pdf as same
        def run_tool(input_dir, output_dir):
            assert save_as_pdf is same
            path = save_as_pdf("<h1>Omdöme</h1><p>Klass 7B: godkänd</p>", output_dir, "omdome.pdf")
            for bad in ("../escape.pdf", "/tmp/abs.pdf", "notes.txt"):
                try:
                    save_as_pdf("<p>x</p>", output_dir, bad)
                except ValueError:
                    pass
                else:
                    raise AssertionError(bad)
            return path
    '''))
    assert outcome.status == "succeeded", (outcome.error_summary, outcome.traceback)
    assert [a["path"] for a in outcome.envelope["artifacts"]] == ["omdome.pdf"]
    data = outcome.artifact_files["omdome_pdf"].read_bytes()
    assert data.startswith(b"%PDF")
    text = pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert "Omdöme" in text and "Klass 7B: godkänd" in text


async def test_artifacts_are_collected_after_failure_and_timeout(run):
    write = "open(o + '/partial.txt', 'w').write('so far')\n"
    outcome = await run(f"def run_tool(i, o):\n    {write}    raise RuntimeError('boom')\n")
    assert outcome.status == "failed"
    assert [a["id"] for a in outcome.envelope["artifacts"]] == ["partial_txt"]
    outcome = await run(f"def run_tool(i, o):\n    {write}    while True:\n        pass\n",
                        limits=RunLimits(timeout=1.5))
    assert outcome.status == "timed_out"
    assert [a["id"] for a in outcome.envelope["artifacts"]] == ["partial_txt"]
    assert outcome.artifact_files["partial_txt"].read_text() == "so far"


async def test_module_state_does_not_leak_between_runs(run):
    source = tool('''
        import json, os, sys
        COUNTER = getattr(json, "_leak", 0)
        def run_tool(input_dir, output_dir):
            json._leak = COUNTER + 1
            os.environ["LEAK"] = "1"
            open(os.path.join(os.environ["HOME"], "leftover"), "w").write("x")
            return {"state": {"counter": json._leak, "env": "LEAK" in os.environ and COUNTER > 0,
                              "files": sorted(os.listdir(os.environ["HOME"]))}}
    ''')
    first, second = await run(source), await run(source)
    assert first.envelope["state"]["counter"] == second.envelope["state"]["counter"] == 1
    assert second.envelope["state"]["env"] is False
    assert "leftover" in first.envelope["state"]["files"]


async def test_a_killed_kernel_is_reported(run):
    outcome = await run("import os, signal\ndef run_tool(i, o):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    assert outcome.status == "failed"
    assert outcome.error_summary == "Execution failed (the tool's process was killed)."
    outcome = await run("import os\ndef run_tool(i, o):\n    os._exit(0)\n")
    assert outcome.status == "failed"
    await assert_still_serves(run)


async def test_no_network_when_kernels_have_their_own_namespace(run, pool):
    if not pool.isolate_network:
        pytest.skip("network isolation needs root (Docker mode relies on the container's network)")
    outcome = await run(tool('''
        import socket
        def run_tool(input_dir, output_dir):
            try:
                socket.create_connection(("127.0.0.1", 22), timeout=2)
            except OSError as exc:
                return type(exc).__name__
            return "connected"
    '''))
    assert outcome.envelope["outputs"][0]["html"] in ("OSError", "ConnectionRefusedError")


async def test_an_empty_pool_waits_and_reports_the_wait(pool, runner):
    # Drain the pool: every kernel in use, so the next acquire must wait for a refill.
    held = [await pool.acquire() for _ in range(pool.size)]
    outcome = await runner.run(__import__("runner_kernel").RunRequest(source=NOOP))
    for kernel in held:
        pool.release(kernel)
    assert outcome.status == "succeeded"
    assert outcome.timings["queue_wait_s"] > 0.05  # a kernel start: ~0.15 s forked, 1-2 s as a new interpreter


async def test_a_delayed_refill_waits_unless_someone_needs_a_kernel():
    """refill_delay keeps a replacement kernel from starting while the page draws the run; an acquire() that
    finds the pool empty starts the delayed refill at once instead of waiting the delay out."""
    async with KernelPool(size=1, preload=(), refill_delay=30.0) as pool:
        await pool.wait_ready()
        first = await pool.acquire()
        await asyncio.sleep(2)
        assert pool.ready_count == 0 and pool.stats["started"] == 1  # the replacement waits out its delay
        second = await pool.acquire(timeout=25)  # without the hurry this would take 30 s and more
        assert second.wait_s < 25 and pool.stats["started"] == 2
        pool.release(first)
        pool.release(second)


async def test_forked_kernels_share_nothing_of_a_run_and_draw_fresh_random_numbers(run, pool):
    """Every kernel is a fork of the same clean fork server: two runs in a row must not share random state
    (numpy's global RandomState is not reseeded at fork by itself), module-level state or files."""
    assert pool.fork_server
    source = tool('''
        import os, random, numpy, pandas
        def run_tool(input_dir, output_dir):
            seen = [getattr(pandas, "_previous_run", None), os.path.exists("/proc/self/cwd/../../mark")]
            pandas._previous_run = os.getpid()  # a module the fork server imported before forking
            open(os.path.join(os.environ["HOME"], "..", "mark"), "w").write("x")
            return {"state": {"draws": [random.random(), float(numpy.random.rand()), random.getrandbits(64)],
                              "seen": seen, "pid": os.getpid(),
                              # the kernel is configured in code, as the exec path is by its command line
                              "history": get_ipython().history_manager.enabled}}
    ''')
    first, second = await run(source), await run(source)
    assert first.status == second.status == "succeeded", (first.traceback, second.traceback)
    a, b = first.envelope["state"], second.envelope["state"]
    assert a["pid"] != b["pid"]
    assert a["seen"] == b["seen"] == [None, False]
    assert a["history"] is False and b["history"] is False
    for x, y, name in zip(a["draws"], b["draws"], ("random", "numpy", "random bits"), strict=True):
        assert x != y, f"two kernels drew the same {name} value: their random state came from the fork server"


async def test_a_refill_forks_instead_of_starting_an_interpreter(tmp_path):
    """A refill from the fork server costs a fraction of a cold start (new interpreter, imports), measured here
    in the same test: CPU seconds of the kernel process (less noisy than wall time), wall time as a backstop."""
    async with KernelPool(size=1, limits=RunLimits(timeout=30), fork_server=False) as cold_pool:
        await cold_pool.wait_ready()
        cold = [(cold_pool.stats["start_s_last"], cold_pool.stats["start_cpu_s_last"])]
        cold_pool.release(await cold_pool.acquire())
        await cold_pool.wait_ready()
        cold.append((cold_pool.stats["start_s_last"], cold_pool.stats["start_cpu_s_last"]))
    async with KernelPool(size=1, limits=RunLimits(timeout=30)) as warm_pool:
        await warm_pool.wait_ready()  # the first start includes the fork server's own (paid once per pool)
        forked = []
        for _ in range(3):
            warm_pool.release(await warm_pool.acquire())
            await warm_pool.wait_ready()
            forked.append((warm_pool.stats["start_s_last"], warm_pool.stats["start_cpu_s_last"]))
        assert warm_pool.stats["fork_server_starts"] == 1 and warm_pool.stats["start_failures"] == 0
    cold_wall, cold_cpu = min(w for w, _ in cold), min(c for _, c in cold)
    fork_wall, fork_cpu = sorted(w for w, _ in forked)[1], sorted(c for _, c in forked)[1]
    assert fork_cpu < 0.5 * cold_cpu, (forked, cold)
    assert fork_wall < 0.9 * cold_wall, (forked, cold)


async def test_the_fork_server_reaps_its_kernels_and_is_replaced_when_it_dies():
    async with KernelPool(size=2, limits=RunLimits(timeout=30), preload=()) as pool:
        await pool.wait_ready()
        runner = __import__("runner_kernel").Runner(pool)
        for _ in range(6):
            outcome = await runner.run(__import__("runner_kernel").RunRequest(source=NOOP))
            assert outcome.status == "succeeded"
        await pool.wait_ready()
        zygote = psutil.Process(pool._zygote.pid)
        for _ in range(40):  # a killed kernel is a zombie until the fork server's SIGCHLD handler reaps it
            children = zygote.children()
            if not any(c.status() == psutil.STATUS_ZOMBIE for c in children):
                break
            await asyncio.sleep(0.05)
        assert sorted(c.pid for c in children) == sorted(pool._live)  # the two idle kernels, nothing else

        zygote.kill()  # its idle kernels die with it (PR_SET_PDEATHSIG); the pool must not get stuck
        zygote.wait(5)
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive
        outcome = await asyncio.wait_for(runner.run(__import__("runner_kernel").RunRequest(source=NOOP)), 60)
        assert outcome.status == "succeeded", outcome.envelope
        assert pool.stats["fork_server_starts"] == 2
