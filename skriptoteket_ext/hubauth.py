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


def service_oauth_class():
    """HubOAuth that never caches a failed identification.

    While the hub's database is down, the hub answers token checks with "no such user"; JupyterHub's client
    would remember that for ``cache_max_age`` and keep refusing a valid token after the database returned.
    Successful identifications are still cached.
    """
    from jupyterhub.services.auth import HubOAuth

    class ServiceOAuth(HubOAuth):
        async def _check_hub_authorization(self, url, api_token, cache_key=None, use_cache=True):
            model = await super()._check_hub_authorization(url, api_token, cache_key, use_cache)
            if model is None and use_cache and cache_key is not None:
                self.cache.pop(cache_key, None)
            return model

    return ServiceOAuth
