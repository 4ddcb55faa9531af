"""Small adaptations of JupyterHub's authenticators, imported by hub_config/jupyterhub_config.py."""

from __future__ import annotations

import contextlib


class _NoStatsd:
    """JupyterHub 6 removed statsd; NativeAuthenticator 1.3's login handler still times itself with it."""

    def timer(self, *args, **kwargs):
        return self

    def start(self):
        return self

    def stop(self, *args, **kwargs):
        return None

    def incr(self, *args, **kwargs):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def patch_native_authenticator() -> None:
    with contextlib.suppress(ImportError):
        from nativeauthenticator import handlers

        handlers.LoginHandler.statsd = _NoStatsd()
