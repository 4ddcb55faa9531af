"""runner_kernel._standins: the Voila server's import diet. Each case runs in a fresh interpreter (the diet changes
``sys.modules`` for the whole process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

ORDER_PACKAGE = {
    # each module appends its name to builtins.ORDER when it runs
    "dpkg/__init__.py": "import builtins; builtins.ORDER.append('dpkg'); VALUE = 42\nfrom . import wired\n",
    "dpkg/wired.py": "import builtins; builtins.ORDER.append('dpkg.wired')\n",
    "dpkg/sub.py": "import builtins; builtins.ORDER.append('dpkg.sub')\nfrom . import wired\n",
    "leaf.py": "import builtins; builtins.ORDER.append('leaf')\nclass Thing: pass\n",
    "broken.py": "raise RuntimeError('broken at import')\n",
    # signals that it has started running, then takes its time before defining VALUE
    "slow.py": "import builtins, time; builtins.ORDER.append('slow'); builtins.RUNNING.set(); time.sleep(0.5)\n"
               "VALUE = 42\n",
}


def _run(code: str, path=None) -> dict:
    prelude = "import builtins, json, sys; builtins.ORDER = []\n"
    if path is not None:
        prelude += f"sys.path.insert(0, {str(path)!r})\n"
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                            check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def packages(tmp_path):
    for rel, text in ORDER_PACKAGE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_a_deferred_module_runs_at_its_first_own_attribute(packages):
    out = _run("""
        from runner_kernel import _standins
        _standins.defer("leaf")
        import leaf
        import leaf as again
        after_import = list(ORDER)
        isinstance(object(), leaf.Thing)
        print(json.dumps({"after_import": after_import, "after_use": ORDER, "loaded": _standins.loaded("leaf"),
                          "same": leaf is sys.modules["leaf"] is again}))
    """, packages)
    assert out == {"after_import": [], "after_use": ["leaf"], "loaded": True, "same": True}


def test_from_import_runs_it(packages):
    out = _run("""
        from runner_kernel import _standins
        _standins.defer("dpkg")
        from dpkg import VALUE
        print(json.dumps({"order": ORDER, "value": VALUE}))
    """, packages)
    assert out == {"order": ["dpkg", "dpkg.wired"], "value": 42}


def test_afterwards_a_submodule_import_runs_the_package_first_and_makes_no_second_copy(packages):
    # as the import system does: a package's __init__ runs before any of its submodules; dpkg's __init__ imports
    # dpkg.wired itself, and `import dpkg.wired` must then find that one module
    out = _run("""
        from runner_kernel import _standins
        with _standins.deferring(["dpkg"]):
            import dpkg
        import dpkg.wired
        import dpkg.sub
        print(json.dumps({"order": ORDER, "value": dpkg.VALUE, "one_wired": dpkg.wired is sys.modules["dpkg.wired"],
                          "own_spec": type(dpkg.wired.__spec__.loader).__name__}))
    """, packages)
    assert out == {"order": ["dpkg", "dpkg.wired", "dpkg.sub"], "value": 42, "one_wired": True,
                   "own_spec": "SourceFileLoader"}


def test_inside_the_window_a_submodule_imports_without_the_package(packages):
    out = _run("""
        from runner_kernel import _standins
        with _standins.deferring(["dpkg"]):
            import dpkg.wired
        before = list(ORDER)
        dpkg.VALUE
        print(json.dumps({"before": before, "after": ORDER}))
    """, packages)
    assert out == {"before": ["dpkg.wired"], "after": ["dpkg.wired", "dpkg"]}


def test_a_module_that_fails_raises_at_first_use_and_is_not_left_behind(packages):
    out = _run("""
        from runner_kernel import _standins
        _standins.defer("broken")
        import broken
        try:
            broken.anything
        except RuntimeError as e:
            error = str(e)
        print(json.dumps({"error": error, "left": "broken" in sys.modules}))
    """, packages)
    assert out == {"error": "broken at import", "left": False}


def test_first_use_from_several_threads_at_once_waits_for_the_one_run(packages):
    # while one thread runs the module, the others' first uses (an attribute, `from X import`) must wait for it
    # and find VALUE, not a half-run module; and it runs once
    out = _run("""
        import threading
        from runner_kernel import _standins
        builtins.RUNNING = threading.Event()
        _standins.defer("slow")
        import slow
        got = {}

        def use(key, how):
            if key != "first":
                RUNNING.wait()  # the first thread is inside the module's code now
            try:
                got[key] = how()
            except Exception as e:
                got[key] = repr(e)

        def from_import():
            from slow import VALUE
            return VALUE

        threads = [threading.Thread(target=use, args=("first", lambda: slow.VALUE)),
                   threading.Thread(target=use, args=("attribute", lambda: slow.VALUE)),
                   threading.Thread(target=use, args=("from_import", from_import)),
                   threading.Thread(target=use, args=("loaded", lambda: _standins.loaded("slow")))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({"got": got, "order": ORDER}))
    """, packages)
    assert out["got"]["first"] == out["got"]["attribute"] == out["got"]["from_import"] == 42, out
    assert out["got"]["loaded"] is False  # asked while it was still running
    assert out["order"] == ["slow"]


def test_the_server_import_leaves_the_hub_database_requests_and_ipython_unrun():
    out = _run("""
        import runner_kernel.singleuser
        from runner_kernel import _standins
        state = {name: _standins.loaded(name) for name in _standins.DEFERRED}
        absent = [m for m in ("jupyterhub.handlers", "alembic", "sqlalchemy.orm", "sqlalchemy.engine", "urllib3",
                              "IPython.core.interactiveshell") if m in sys.modules]
        # what the server uses of IPython, without running IPython's __init__
        from jupyter_client.kernelspec import KernelSpecManager
        ipython_kernels = KernelSpecManager().kernel_dirs[-1].endswith(".ipython/kernels")
        ipython_ran = _standins.loaded("IPython")
        # still the real modules when used: the hub's database model works in the same process
        from jupyterhub import orm, scopes
        db = orm.new_session_factory("sqlite://")()
        db.add(orm.User(name="a"))
        db.commit()
        table = db.query(orm.User).one().name
        intersect = sorted(scopes._intersect_expanded_scopes({"read:users!user=a"}, {"read:users"}))
        from IPython.display import display
        print(json.dumps({"state": state, "absent": absent, "table": table, "intersect": intersect,
                          "scopes_orm": scopes.orm is orm, "ipython": [ipython_kernels, ipython_ran, callable(display)]}))
    """)
    assert out["state"] == {name: False for name in out["state"]} and "sqlalchemy" in out["state"]
    assert out["absent"] == []
    assert out["table"] == "a" and out["scopes_orm"]
    assert out["intersect"] == ["read:users!user=a"]
    assert out["ipython"] == [True, False, True]


def test_import_without_keeps_the_blocked_module_out_only_while_the_library_imports(tmp_path):
    (tmp_path / "accel.py").write_text("import builtins; builtins.ORDER.append('accel')\n")
    (tmp_path / "lib.py").write_text(
        "import builtins; builtins.ORDER.append('lib')\n"
        "try:\n    import accel\n    FAST = True\nexcept ImportError:\n    FAST = False\n")
    got = _run("""
        from runner_kernel._standins import import_without
        import_without("lib", blocked="accel")
        import lib
        during = (lib.FAST, list(ORDER))
        import accel  # afterwards, as usual
        print(json.dumps({"during": during, "after": list(ORDER)}))
    """, tmp_path)
    assert got["during"] == [False, ["lib"]]
    assert got["after"] == ["lib", "accel"]
