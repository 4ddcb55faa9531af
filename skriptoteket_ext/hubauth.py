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
    """HubOAuth that never caches a failed identification, asks twice, and tells an outage from a bad token.

    The hub answers a token check with 403 "no such user" whenever its database query fails:

    - while Postgres is down. JupyterHub's client would cache that for ``cache_max_age`` and keep refusing a
      valid token after the database returned, so a failure is never cached; and when the database is
      unreachable (``db_probe`` raises) the caller gets 503 ``db_unavailable``, not a 401 that tells the
      teacher to log in again;
    - once after Postgres restarted: the hub's one long-lived session keeps its connection checked out between
      requests (inside an open transaction, so JupyterHub's ping on checkout never runs) and its first query
      on the dead connection fails; the hub rolls back and the next check works. Hence the second question.

    Successful identifications are still cached.
    """
    from jupyterhub.services.auth import HubOAuth

    class ServiceOAuth(HubOAuth):
        db_probe = None  # async callable, raises when the database is unreachable (set by the service)

        async def _check_hub_authorization(self, url, api_token, cache_key=None, use_cache=True):
            model = await self._ask_hub(url, api_token, cache_key, use_cache)
            if model is None:
                model = await self._ask_hub(url, api_token, cache_key, use_cache)
            if model is None and self.db_probe is not None:
                await self.db_probe()
            return model

        async def _ask_hub(self, url, api_token, cache_key, use_cache):
            model = await super()._check_hub_authorization(url, api_token, cache_key, use_cache)
            if model is None and use_cache and cache_key is not None:
                self.cache.pop(cache_key, None)
            return model

    return ServiceOAuth
