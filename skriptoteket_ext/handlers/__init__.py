"""Tornado handlers, grouped by resource. ``default_handlers`` is the service's whole URL map."""

from . import base, health, me, pages
from . import catalog_api, suggestions, tools
from . import runs

default_handlers = [*health.default_handlers, *me.default_handlers, *pages.default_handlers, *runs.default_handlers]
fallback_handler = base.NotFoundHandler
