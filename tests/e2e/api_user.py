"""A user of the service's JSON API with their own hub token (created in the hub unless it is the admin)."""

from __future__ import annotations

import httpx


class ApiUser:
    def __init__(self, platform, name, *groups):
        if name != "admin":
            platform.create_user(name, *groups)
        self.name = name
        self.token = platform.token_for(name)
        self.api = f"{platform.service_url}/api/v1"

    def headers(self, **extra) -> dict:
        return {"Authorization": f"token {self.token}", **extra}

    def __call__(self, method, path, expect=None, **kw):
        headers = self.headers(**kw.pop("headers", {}))
        r = httpx.request(method, f"{self.api}/{path}", headers=headers, timeout=60, **kw)
        if expect is not None:
            assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r

    def ok(self, method, path, **kw):
        r = self(method, path, **kw)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None
