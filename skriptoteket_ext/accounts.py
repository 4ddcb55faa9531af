"""Local accounts from the command line: the bootstrap admin and ``skriptoteket create-user``.

Credentials are NativeAuthenticator's: rows in its ``users_info`` table (the authenticator's own storage in
the hub database), created through its own ORM model and bcrypt hashing. Group membership goes through the
hub's REST API with the command line's service token, never through the hub's tables.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request

import bcrypt
from nativeauthenticator.orm import UserInfo
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _hub_engine(hub_db_url: str):
    """An engine on the hub's database, after JupyterHub itself has created (or checked) its schema.

    The hub must create its tables first: finding a foreign table in an empty database makes it guess an
    ancient schema version and refuse to start.
    """
    from jupyterhub.orm import new_session_factory

    session_factory = new_session_factory(hub_db_url)
    session_factory.kw["bind"].dispose()
    engine = create_engine(hub_db_url)
    UserInfo.__table__.create(engine, checkfirst=True)
    return engine


def set_credentials(hub_db_url: str, username: str, password: str) -> bool:
    """Create or update an approved local account. Returns True when the account is new."""
    engine = _hub_engine(hub_db_url)
    try:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
        with Session(engine) as session, session.begin():
            info = session.scalars(select(UserInfo).where(UserInfo.username == username)).first()
            created = info is None
            if created:
                session.add(UserInfo(username=username, password=hashed, is_authorized=True))
            else:
                info.password = hashed
                info.is_authorized = True
        return created
    finally:
        engine.dispose()


def account_exists(hub_db_url: str, username: str) -> bool:
    engine = _hub_engine(hub_db_url)
    try:
        with Session(engine) as session:
            return session.scalars(select(UserInfo).where(UserInfo.username == username)).first() is not None
    finally:
        engine.dispose()


class HubAPI:
    """The few hub REST calls the command line needs."""

    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body: dict | None = None) -> dict | None:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.api_url}/{path.lstrip('/')}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=15) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def ensure_user(self, name: str) -> None:
        try:
            self.request("GET", f"users/{name}")
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
            self.request("POST", f"users/{name}")

    def set_groups(self, name: str, groups: list[str]) -> None:
        for group in groups:
            self.request("POST", f"groups/{group}/users", {"users": [name]})
