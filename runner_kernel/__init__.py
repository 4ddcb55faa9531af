"""What runs inside a user's server: the tool runner, the toolkit for tool code, and the renderer.

The runner's public API: ``KernelPool`` (warm, single-use kernels), ``Runner`` (one execution ->
``RunOutcome`` with the raw contract-v2 envelope), ``RunRequest`` and ``RunLimits``. See docs/runner.md.
Imported lazily so that the renderer and other light users do not pay for jupyter_client.
"""

__all__ = ["KernelPool", "RunLimits", "RunOutcome", "RunRequest", "Runner"]


def __getattr__(name):
    if name == "RunLimits":
        from .limits import RunLimits

        return RunLimits
    if name == "KernelPool":
        from .pool import KernelPool

        return KernelPool
    if name in ("Runner", "RunRequest", "RunOutcome"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(name)
