"""Structured logs: one JSON object per line, and the request log of the service.

Every line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``; a request line adds
``correlation_id``, ``user``, ``method``, ``path``, ``route``, ``status``, ``duration_ms``. Other lines carry the
correlation id when the code passes ``extra={"correlation_id": ...}``.

Secrets never reach the log: query parameters that carry credentials (``token``, ``access_token``, ``code``,
``state``, ``_xsrf``, ``api_key``, ``key``, ``password``, ``secret``) are replaced by ``[redacted]`` in paths,
and the same happens to ``Authorization: token …``/``Bearer …`` values, ``token=…`` pairs and URL passwords
(``postgresql://user:pw@``) anywhere in a message (``redact``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode

from . import metrics

SECRET_PARAMS = {"token", "access_token", "refresh_token", "code", "state", "_xsrf", "api_key", "apikey", "key",
                 "password", "secret", "client_secret"}
REDACTED = "[redacted]"
_PATTERNS = [
    (re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(token|bearer|basic)\s+[^\s\"',}]+"), r"\1\2 " + REDACTED),
    (re.compile(r"(?i)\b(token|bearer)\s+[A-Za-z0-9._~+/=-]{16,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)([?&;\s\"'](?:access_token|api_key|apikey|token|password|secret|_xsrf|code)=)[^&\s\"';]+"),
     r"\1" + REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(?i)\b(sk-[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+"), r"\1" + REDACTED),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_path(uri: str) -> str:
    path, sep, query = uri.partition("?")
    if not sep:
        return redact(path)
    pairs = [(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in parse_qsl(query, keep_blank_values=True)]
    return redact(path) + "?" + urlencode(pairs, safe="[]/")


class JsonFormatter(logging.Formatter):
    FIELDS = ("correlation_id", "user", "method", "path", "route", "status", "duration_ms")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for field in self.FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def install(app_log: logging.Logger | None = None, level: int = logging.INFO, stream=None) -> logging.Handler:
    """Send the service's logs (root, tornado, the traitlets app's logger) to one JSON handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("tornado", "tornado.access", "tornado.application", "tornado.general", "skriptoteket"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    if app_log is not None:
        app_log.handlers[:] = []
        app_log.propagate = True
        app_log.setLevel(level)
    return handler


access_log = logging.getLogger("skriptoteket.access")


def log_request(handler) -> None:
    """Tornado's ``log_function``: one structured line per request, and its metrics."""
    status = handler.get_status()
    seconds = handler.request.request_time()
    try:
        metrics.observe_request(handler, status, seconds)
    except Exception:  # noqa: BLE001 - metrics must never break a request
        pass
    admission = handler.settings.get("admission")
    if admission is not None and getattr(handler, "_skr_in_flight", False):
        handler._skr_in_flight = False
        admission.leave()
    if metrics.route_of(handler) in ("HealthHandler", "MetricsHandler") and status < 400:
        level = logging.DEBUG
    else:
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    user = getattr(handler, "_hub_auth_user_cache", None)
    access_log.log(level, "%s %s %s %.1f ms", handler.request.method, redact_path(handler.request.uri), status,
                   seconds * 1000, extra={
                       "correlation_id": getattr(handler, "correlation_id", None),
                       "user": user.get("name") if isinstance(user, dict) else None,
                       "method": handler.request.method,
                       "path": redact_path(handler.request.uri),
                       "route": metrics.route_of(handler),
                       "status": status,
                       "duration_ms": round(seconds * 1000, 1),
                   })
