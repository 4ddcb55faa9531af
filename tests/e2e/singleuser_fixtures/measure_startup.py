"""Start-up of runner_kernel.singleuser without a hub: process start -> /ready 200 -> first warm kernel.

Run from the repository root: .venv/bin/python tests/e2e/singleuser_fixtures/measure_startup.py [server args]
(The hub variables are fake: nothing here authenticates; only the start-up is measured.)
"""
import os, subprocess, sys, time, httpx, socket
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
port = free()
env = {**os.environ, "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}", "JUPYTERHUB_SERVICE_PREFIX": "/user/x/",
       "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_API_TOKEN": "not-a-token", "JUPYTERHUB_USER": "x"}
t0 = time.monotonic()
p = subprocess.Popen([sys.executable, "-m", "runner_kernel.singleuser", "--notebook=tests/e2e/singleuser_fixtures/query_demo.ipynb", *sys.argv[1:]],
                     env=env, stderr=subprocess.PIPE, text=True)
ready = warm = None
try:
    with httpx.Client(timeout=2) as c:
        while warm is None and time.monotonic() - t0 < 60:
            try:
                if ready is None and c.get(f"http://127.0.0.1:{port}/user/x/ready").status_code == 200:
                    ready = time.monotonic() - t0
                if ready is not None and c.get(f"http://127.0.0.1:{port}/user/x/ready?warm=1").status_code == 200:
                    warm = time.monotonic() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.02)
finally:
    p.terminate(); _, err = p.communicate(timeout=20)
print(f"process start -> /ready 200: {ready:.2f} s; -> first warm kernel: {warm:.2f} s")
print([l for l in err.splitlines() if "listening after" in l])
