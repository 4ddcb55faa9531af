"""Make this process non-dumpable (prctl PR_SET_DUMPABLE 0) when it holds the hub token in its environment.

Imported at start-up by skriptoteket_nodump.pth in the user image, only in processes started with
JUPYTERHUB_API_TOKEN / JPY_API_TOKEN (PID 1 and the single-user server; kernels get a scrubbed environment).
A non-dumpable process's /proc/<pid>/environ, /proc/<pid>/mem, ... belong to root, and ptrace attaches are
refused, so tool code running under the same uid cannot read the token from it. The flag is reset by execve,
so the kernels the server starts are ordinary processes.
"""

import ctypes

PR_SET_DUMPABLE = 4

ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
