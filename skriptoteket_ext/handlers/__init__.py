"""Tornado handlers, grouped by resource. ``default_handlers`` is the service's whole URL map."""

from . import base, health, me, pages
from . import runs
from . import catalog_api, suggestions, tools

default_handlers = [*health.default_handlers, *me.default_handlers, *pages.default_handlers, *runs.default_handlers,
    *tools.default_handlers, *suggestions.default_handlers, *catalog_api.default_handlers,
]
fallback_handler = base.NotFoundHandler
