"""Server-rendered pages (Jinja2, in JupyterHub's look).

Pages only read. Every change (favorites, drafts, reviews, suggestions) goes through the JSON API, posted by
the small script ``static/skriptoteket.js``, so each rule is enforced in one place: the API's permission table.
"""

from __future__ import annotations

from urllib.parse import urlencode

from jupyterhub.services.auth import HubOAuthCallbackHandler

from .. import catalog, profiles
from .. import runs as run_store
from ..errors import ApiError
from ..i18n import LANGUAGES
from ..scopes import needs_scope
from .base import BaseHandler


class PageHandler(BaseHandler):
    """A page: remembers a language chosen with ``?lang=`` and offers the helpers every page needs."""

    async def prepare(self) -> None:
        await super().prepare()
        lang = self.get_argument("lang", None)
        if lang in LANGUAGES:
            self.set_cookie("skriptoteket-lang", lang, path=self.config.base_url, samesite="Lax", httponly=True)

    def tool_url(self, slug: str, **params) -> str:
        """Open a tool in the user's own server. A stopped server is started first, through the hub's progress
        page (``implicit_spawn_seconds`` in hub_config)."""
        return f"{self.config.hub_prefix}user-redirect/?" + urlencode({"tool": slug, **params})

    def request_query(self, **overrides) -> str:
        """This page's query string with some arguments replaced (for "more" links that keep filters)."""
        args = {k: v for k, v in self.query_arguments().items() if k not in overrides}
        args.update({k: [str(v)] for k, v in overrides.items()})
        return urlencode(args, doseq=True)

    def template_namespace(self) -> dict:
        ns = super().template_namespace()
        ns.update(tool_url=self.tool_url, request_query=self.request_query)
        return ns


class CatalogPage(PageHandler):
    """The landing page after login: published tools, search, filters, favorites, recently used."""

    @needs_scope()
    async def get(self) -> None:
        try:
            query = catalog.parse_query(self.query_arguments())
        except ApiError:
            query = catalog.parse_query({})
        async with self.engine.begin() as conn:
            await profiles.touch(conn, self.user_name)
            found = await catalog.search(
                conn, self.user_name, q=query["q"], professions=query["professions"],
                categories=query["categories"], favorites_only=query["favorites"],
                limit=query["limit"], offset=query["offset"],
            )
            taxonomy = await catalog.taxonomy(conn, self.lang)
            favorites = await catalog.list_favorites(conn, self.user_name)
            recent = await catalog.recent(conn, self.user_name)
        filtering = bool(query["q"] or query["professions"] or query["categories"] or query["favorites"])
        self.render_page(
            "catalog.html", query=query, found=found, taxonomy=taxonomy, favorites=favorites, recent=recent,
            filtering=filtering, labels={t["slug"]: t["label"] for key in taxonomy for t in taxonomy[key]},
        )


class MyRunsPage(PageHandler):
    """My latest runs, each replayable from its stored result."""

    @needs_scope()
    async def get(self) -> None:
        async with self.transaction() as (conn, cleanup):
            listing = await run_store.list_runs(
                conn, self.user_name, limit=50, before=self.get_argument("before", None), cleanup=cleanup
            )
        self.render_page("runs.html", runs=listing["runs"], next_before=listing["next_before"])


default_handlers = [
    (r"", CatalogPage),
    (r"runs", MyRunsPage),
    (r"oauth_callback", HubOAuthCallbackHandler),
]
