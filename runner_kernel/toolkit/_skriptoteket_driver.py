"""Runs one tool inside a pooled kernel and writes the raw result to a file for the runner.

Imported when the kernel starts (so a run costs one short execute_request), then ``run(params_json)`` is called
exactly once: the kernel is killed after the run. The result goes to a file, never to stdout, which the tool owns.
Nothing here decides what the user reads: it reports a *reason* and the runner picks the words (limits.py).
"""

import datetime
import decimal
import errno
import json
import linecache
import math
import os
import resource
import sys
import traceback
import types

from tool_errors import ToolUserError

MAX_DEPTH = 64


class ResultError(Exception):
    """The tool returned something that is not a result (wrong type, or a value with no JSON form)."""


def run(params_json):
    params = json.loads(params_json)
    os.environ.update(params["env"])
    os.chdir(params["work_dir"])
    _lower_limits(params["limits"], params["kernel_limits"])
    pid = os.getpid()
    try:
        doc = _run_tool(params)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are tool failures too
        doc = _error(exc)
    finally:
        if os.getpid() != pid:
            os._exit(70)  # a child the tool forked fell out of the tool code: it must not report or go on
    text = json.dumps(doc, ensure_ascii=False, allow_nan=False)
    if len(text) > params["max_result_bytes"]:
        text = json.dumps({"kind": "error", "reason": "result", "message": (
            f"The tool's result is too large ({len(text):,} bytes; at most {params['max_result_bytes']:,}).")})
    tmp = params["result_path"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, params["result_path"])


def _lower_limits(limits, kernel_limits):
    """Tighten the rlimits the kernel was started with to this run's limits (lowering needs no privilege)."""
    with open("/proc/self/status") as f:
        vm_size = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:")), 0)
    # The tool may add memory_bytes of address space on top of the idle kernel's own mappings.
    _lower(resource.RLIMIT_AS, vm_size + limits["memory_bytes"])
    _lower(resource.RLIMIT_FSIZE, limits["disk_bytes"])
    for which, key in ((resource.RLIMIT_NPROC, "processes"), (resource.RLIMIT_NOFILE, "open_files")):
        cut = kernel_limits[key] - limits[key]
        if cut > 0:
            _lower(which, resource.getrlimit(which)[1] - cut)


def _lower(which, value):
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (max(value, 0), hard))


def _run_tool(params):
    with open(params["source_path"], encoding="utf-8") as f:
        source = f.read()
    # Tracebacks say "tool.py", line N, with the line's text, not the private work path.
    filename = "tool.py"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec")
    module = types.ModuleType("tool")
    module.__file__ = filename
    sys.modules["tool"] = module  # dataclasses, pickle and friends look the module up by name
    exec(code, module.__dict__)  # module-level code runs on every execution (fresh kernel each time)

    entry = getattr(module, params["entrypoint"], None)
    if not callable(entry):
        raise ResultError(f"The tool defines no function named {params['entrypoint']!r}.")
    value = entry(params["input_dir"], params["output_dir"])

    if isinstance(value, str):
        outputs = [{"kind": "html_sandboxed", "html": value}] if value else []
        return {"kind": "ok", "outputs": outputs, "next_actions": [], "state": None}
    if not isinstance(value, dict):
        raise ResultError(
            f"{params['entrypoint']} returned {_type_name(value)}; it must return a dict "
            "(with outputs, next_actions, state) or a str.")
    return {
        "kind": "ok",
        "outputs": _jsonable(value.get("outputs", []), "outputs", 0),
        "next_actions": _jsonable(value.get("next_actions", []), "next_actions", 0),
        "state": _jsonable(value.get("state"), "state", 0),
    }


def _type_name(value):
    cls = type(value)
    return cls.__name__ if cls.__module__ in ("builtins", "tool") else f"{cls.__module__}.{cls.__qualname__}"


def _jsonable(value, path, depth):
    """The JSON form of a result value. Decisions (docs/runner.md): tuple -> list, set/frozenset -> sorted list,
    NaN/inf -> null, date/time -> ISO string, Decimal -> float, numpy/pandas scalars and arrays -> their Python
    values. Bytes and arbitrary objects fail the run with a message naming the path: guessing an encoding or a
    repr would show the user garbage."""
    if depth > MAX_DEPTH:
        raise ResultError(f"The tool's result is nested too deeply (more than {MAX_DEPTH} levels) at {path}.")
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ResultError(f"The tool's result has a key of type {_type_name(key)} at {path}; keys must be strings.")
            name = key if isinstance(key, str) else json.dumps(key)
            out[name] = _jsonable(item, f"{path}[{name!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(item, f"{path}[...]", depth + 1) for item in value]
        try:
            return sorted(items)
        except TypeError:  # mixed types: still deterministic
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _jsonable(float(value), path, depth)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ResultError(
            f"The tool's result contains bytes at {path}; return text, or write the data to a file in output_dir.")
    # numpy/pandas values without importing them: scalars have .item(), arrays .tolist(), Timestamps isoformat().
    for attr in ("isoformat", "tolist", "item"):
        method = getattr(value, attr, None)
        if callable(method) and type(value).__module__.split(".")[0] in ("numpy", "pandas"):
            try:
                converted = method()
            except Exception:  # noqa: BLE001 - e.g. NaT.isoformat() is fine, but be safe
                continue
            return _jsonable(converted, path, depth + 1)
    raise ResultError(f"The tool's result contains a value of type {_type_name(value)} at {path}, which has no JSON form.")


def _error(exc):
    if isinstance(exc, ToolUserError) or type(exc).__name__ == "ToolUserError":
        return {"kind": "error", "reason": "user_error", "message": str(exc)}
    if isinstance(exc, ResultError):
        return {"kind": "error", "reason": "result", "message": str(exc)}
    return {"kind": "error", "reason": _limit_hit(exc) or "exception", "exc_name": type(exc).__name__,
            "traceback": _traceback(exc)}


def _limit_hit(exc):
    """Which limit an exception means, looking through its causes (libraries often re-raise)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError):
            return "memory"
        if isinstance(exc, OSError):
            if exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
                return "disk"
            if exc.errno == errno.EAGAIN:  # fork/clone failing under RLIMIT_NPROC
                return "processes"
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                return "open_files"
        if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
            return "processes"
        exc = exc.__cause__ or exc.__context__
    return None


def _traceback(exc):
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if f.filename != __file__ and not f.filename.startswith("<frozen")])
    return "".join(te.format())
