"""The JSON error envelope every failure of the service is reported in.

    {"error": {"code": "...", "message": "...", "details": {...}}, "correlation_id": "..."}

Handlers raise ``ApiError`` with a stable ``code``; the message is looked up in the ``errors`` catalog in the
request's language, so teachers read it in English or Swedish.
"""

from __future__ import annotations

from http import HTTPStatus

# The code used when a plain HTTP status (from tornado or an unexpected exception) has to be reported.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
    502: "unavailable",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with a stable code, shown to the user through the envelope."""

    def __init__(self, status: int, code: str | None = None, details: dict | None = None, **params: object):
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.details = details or {}
        self.params = params
        super().__init__(self.code)


def code_for_status(status: int) -> str:
    return STATUS_CODES.get(status, "internal_error" if status >= 500 else "error")


def envelope(code: str, message: str, details: dict | None, correlation_id: str) -> dict:
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "correlation_id": correlation_id,
    }


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
