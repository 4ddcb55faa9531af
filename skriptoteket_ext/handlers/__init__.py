"""Tornado handlers, grouped by resource. ``default_handlers`` is the service's whole URL map."""

from . import ai, authoring_pages, base, catalog_api, health, me, pages, runs, suggestions, tools

default_handlers = [
    *health.default_handlers,
    *me.default_handlers,
    *catalog_api.default_handlers,
    *tools.default_handlers,
    *suggestions.default_handlers,
    *runs.default_handlers,
    *ai.default_handlers,
    *pages.default_handlers,
    *authoring_pages.default_handlers,
]
fallback_handler = base.NotFoundHandler
