"""Server CPU of the pool's pre-renders, Jinja template cache on vs off, alternating in one run.

Run from the repository root: .venv/bin/python tests/e2e/singleuser_fixtures/measure_render.py [pairs] [pool size]
or, in this process only (one page render with a new exporter each time, as Voila does, without a kernel):
.venv/bin/python tests/e2e/singleuser_fixtures/measure_render.py render [pairs]

Each server starts with ``--pool-size=N --no-runner``; each pool kernel's start pre-renders a page in the server.
Measured: the server process's own CPU (not its kernels') from ``/ready`` 200 until N kernels are warm, with
``--SkriptoteketVoila.template_cache`` True or False. (Fake hub variables, as in measure_startup.py.)
"""
import os, socket, statistics, subprocess, sys, time
import httpx, psutil

def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu(proc):
    t = proc.cpu_times(); return t.user + t.system

def one(cache: bool, pool: int) -> float:
    port = free()
    env = {**os.environ, "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}", "JUPYTERHUB_SERVICE_PREFIX": "/user/x/",
           "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_API_TOKEN": "not-a-token", "JUPYTERHUB_USER": "x"}
    p = subprocess.Popen([sys.executable, "-m", "runner_kernel.singleuser", "--notebook=tests/e2e/singleuser_fixtures/query_demo.ipynb",
                          f"--pool-size={pool}", "--no-runner", f"--SkriptoteketVoila.template_cache={cache}"],
                         env=env, stderr=subprocess.DEVNULL)
    proc, start, t0 = psutil.Process(p.pid), None, time.monotonic()
    try:
        with httpx.Client(timeout=2) as c:
            while time.monotonic() - t0 < 120:
                try:
                    body = c.get(f"http://127.0.0.1:{port}/user/x/ready").json()
                    if start is None:
                        start = cpu(proc)
                    if body["warm_kernels"] >= pool:
                        return cpu(proc) - start
                except (httpx.TransportError, ValueError):
                    pass
                time.sleep(0.05)
        raise TimeoutError
    finally:
        p.terminate(); p.wait(timeout=30)

def in_process(pairs: int) -> None:
    import asyncio
    from voila.exporter import VoilaExporter
    sys.path.insert(0, os.getcwd())
    from runner_kernel import template_cache
    from tests.unit import test_template_cache as t

    paths = t._template_paths(t.PROJECT_TEMPLATES / "skriptoteket")
    plain = type("PlainVoilaExporter", (VoilaExporter,), {})  # the same render, no bytecode cache

    async def run():
        await t._render(paths)  # imports and the process's first compile
        res = {"off": [], "on": []}
        for i in range(pairs):
            for name in (("off", "on") if i % 2 == 0 else ("on", "off")):
                t.CachedVoilaExporter = template_cache.CachedVoilaExporter if name == "on" else plain
                c0 = time.process_time(); await t._render(paths); res[name].append(time.process_time() - c0)
        on, off = statistics.median(res["on"]), statistics.median(res["off"])
        print(f"CPU per page render (median of {pairs}): cache off {off * 1000:.0f} ms, on {on * 1000:.0f} ms, "
              f"on/off {on / off:.2f}; templates compiled {template_cache.BYTECODE_CACHE.compiles}, "
              f"loaded from the cache {template_cache.BYTECODE_CACHE.hits}; load {os.getloadavg()}")

    asyncio.run(run())


if sys.argv[1:2] == ["render"]:
    in_process(int(sys.argv[2]) if len(sys.argv) > 2 else 8)
    sys.exit()
pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 4
pool = int(sys.argv[2]) if len(sys.argv) > 2 else 3
res = {True: [], False: []}
for i in range(pairs):
    for cache in ((True, False) if i % 2 else (False, True)):
        res[cache].append(one(cache, pool))
        print(f"cache={cache!s:5} server CPU {res[cache][-1]:.2f} s  load {os.getloadavg()[0]:.1f}", flush=True)
on, off = statistics.median(res[True]), statistics.median(res[False])
print(f"median server CPU, pool of {pool} filled: cache off {off:.2f} s, on {on:.2f} s, on/off {on/off:.2f}, "
      f"saved per pre-render ≈ {(off - on) / pool:.2f} s (the first still compiles); load {os.getloadavg()}")
