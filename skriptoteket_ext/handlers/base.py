"""The base handler: authentication through the hub, the error envelope, security headers, language."""

from __future__ import annotations

import asyncio
import json
import re
import traceback
import uuid

import psycopg
from jupyterhub.services.auth import HubOAuthenticated
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from tornado import web
from tornado.log import app_log

from contextlib import asynccontextmanager

from .. import __version__
from ..blobs import delete_all
from ..errors import ApiError, code_for_status, envelope
from ..i18n import normalize_language, translator
from ..scopes import roles_of

_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Pages use only our own (and the hub's) scripts and styles; nothing inline runs.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
}


class RawJSON(str):
    """A JSON text that is already encoded (the catalog's page, built by Postgres): written as it is."""


def is_database_outage(exc: BaseException | None) -> bool:
    """A lost or refused database connection: the client gets a 503 to retry, not a 500."""
    if isinstance(exc, (OperationalError, SATimeoutError, psycopg.OperationalError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Every handler of the service derives from this.

    The user is resolved once per request in ``prepare`` (asynchronously, against the hub's cache), so
    ``self.current_user`` is a plain attribute afterwards.
    """

    is_api = False

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    @property
    def engine(self):
        return self.settings["engine"]

    @property
    def config(self):
        return self.settings["skriptoteket"]

    @property
    def blobs(self):
        return self.settings["blobs"]

    @asynccontextmanager
    async def transaction(self):
        """One transaction; blobs the domain code released are deleted only after it committed."""
        cleanup: list[str] = []
        async with self.engine.begin() as conn:
            yield conn, cleanup
        if cleanup:
            await asyncio.to_thread(delete_all, self.blobs, cleanup)

    def query_arguments(self) -> dict[str, list[str]]:
        return {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.request.query_arguments.items()}

    # ---- request lifecycle -------------------------------------------------------------------------------

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Cache-Control", "no-store")
        if hasattr(self, "correlation_id"):  # error responses start from a cleared set of headers
            self.set_header("X-Correlation-ID", self.correlation_id)

    def set_correlation_id(self) -> None:
        """Reuse the caller's correlation id when it is well-formed, so one id follows a request through."""
        supplied = self.request.headers.get("X-Correlation-ID", "")
        self.correlation_id = supplied if _CORRELATION_RE.match(supplied) else uuid.uuid4().hex
        self.set_header("X-Correlation-ID", self.correlation_id)

    async def prepare(self) -> None:
        self.set_correlation_id()
        admission = self.settings.get("admission")  # metrics.Admission: in-flight count, 503 busy for new runs
        if admission is not None:
            admission.enter()
            self._skr_in_flight = True  # released by the request log hook (logging.log_request)
        model = await self.hub_auth.get_user(self, sync=False)
        if model:
            try:
                self._hub_auth_user_cache = self.check_hub_user(model)
            except Exception:
                # Authenticated, but the token lacks access to this service.
                self._hub_auth_user_cache = None
                raise ApiError(403, "forbidden")
        else:
            self._hub_auth_user_cache = None
        if admission is not None and admission.applies(self.request):
            await admission.check(self)

    def get_current_user(self):
        return getattr(self, "_hub_auth_user_cache", None)

    @property
    def user_name(self) -> str | None:
        return self.current_user["name"] if self.current_user else None

    def require_login(self):
        """No user: APIs answer 401 with the envelope; pages redirect to the hub's login (OAuth)."""
        if self.is_api:
            raise ApiError(401, "unauthenticated")
        self.redirect(self.get_login_url())

    # ---- language ---------------------------------------------------------------------------------------

    @property
    def lang(self) -> str:
        if not hasattr(self, "_lang"):
            chosen = self.get_argument("lang", None) or self.get_cookie("skriptoteket-lang")
            if chosen and normalize_language(chosen) == chosen:
                self._lang = chosen
            else:
                self._lang = normalize_language(
                    self.request.headers.get("Accept-Language") or self.config.default_language
                )
        return self._lang

    def _(self, key: str, **params) -> str:
        return translator(self.lang)(key, **params)

    # ---- responses ---------------------------------------------------------------------------------------

    def write_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(data if isinstance(data, RawJSON) else json.dumps(data, ensure_ascii=False, default=str))

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json")
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json")
        return body

    def error_parts(self, status_code: int, exc_info) -> tuple[int, str, str, dict]:
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, ApiError):
            status, code, details, params = exc.status, exc.code, exc.details, exc.params
        else:
            status, code, details, params = status_code, code_for_status(status_code), {}, {}
        if status >= 500 and exc is not None and not isinstance(exc, (ApiError, web.HTTPError)):
            app_log.error(
                "Unhandled error [%s]: %s", self.correlation_id if hasattr(self, "correlation_id") else "-",
                "".join(traceback.format_exception(*exc_info)),
            )
        message = self._(f"error.{code}", **params)
        return status, code, message, details

    def send_error(self, status_code: int = 500, **kwargs) -> None:
        # ApiError carries its own status; tornado would otherwise report every exception as a 500.
        exc_info = kwargs.get("exc_info")
        if exc_info and is_database_outage(exc_info[1]):
            kwargs["exc_info"] = (ApiError, ApiError(503, "db_unavailable"), None)
            status_code = 503
        elif exc_info and isinstance(exc_info[1], ApiError):
            status_code = exc_info[1].status
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs) -> None:
        if not hasattr(self, "correlation_id"):
            self.correlation_id = uuid.uuid4().hex
            self.set_header("X-Correlation-ID", self.correlation_id)
        status, code, message, details = self.error_parts(status_code, kwargs.get("exc_info"))
        self.clear_header("Content-Type")
        self.set_status(status)
        if status == 503 and details.get("retry_after"):
            self.set_header("Retry-After", str(details["retry_after"]))
        if self.is_api or "application/json" in self.request.headers.get("Accept", ""):
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps(envelope(code, message, details, self.correlation_id), ensure_ascii=False))
        else:
            self.render_page("error.html", status=status, code=code, message=message)

    # ---- pages -------------------------------------------------------------------------------------------

    def template_namespace(self) -> dict:
        return {
            "_": self._,
            "lang": self.lang,
            "user": self.current_user,
            "base_url": self.config.base_url,
            "hub_prefix": self.config.hub_prefix,
            "static_url": self.static_url,
            "skr_version": __version__,
            "correlation_id": getattr(self, "correlation_id", ""),
            "roles": sorted(roles_of(self.current_user)),
            "xsrf_token": self.xsrf_token.decode() if self.current_user else "",
        }

    def render_page(self, name: str, **ns) -> None:
        template = self.settings["jinja2_env"].get_template(name)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(template.render(**self.template_namespace(), **ns))


class APIHandler(BaseHandler):
    """JSON endpoints under ``api/v1/``: errors are always the envelope, never a redirect or HTML."""

    is_api = True

    def get_login_url(self):
        raise ApiError(401, "unauthenticated")


class DownloadHandler(APIHandler):
    """Downloads are links people click: a browser without a session goes through the hub's login and comes
    back; other clients get the 401 envelope like any API call."""

    def require_login(self):
        if self.request.method == "GET" and "text/html" in self.request.headers.get("Accept", ""):
            return self.redirect(BaseHandler.get_login_url(self))
        raise ApiError(401, "unauthenticated")


class NotFoundHandler(BaseHandler):
    """Unknown routes: the envelope under api/, a friendly page elsewhere."""

    async def prepare(self) -> None:
        self.is_api = "/api/" in self.request.path
        await super().prepare()
        raise ApiError(404, "not_found")
