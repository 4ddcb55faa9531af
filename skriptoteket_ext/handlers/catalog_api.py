"""The catalog for every user (JSON): search and filters, taxonomy, favorites, recently used."""

from __future__ import annotations

from .. import catalog
from ..permissions import authorize, routes
from .base import APIHandler, RawJSON


class CatalogHandler(APIHandler):
    route = "api/v1/catalog"

    @authorize(connection=False)  # often answered from memory; a miss is one autocommit read
    async def get(self):
        """?q=&profession=…&category=…&favorites=1&limit=&offset= (repeat a facet to OR within it)."""
        args = {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.request.query_arguments.items()}
        query = catalog.parse_query(args)
        return RawJSON(await self.settings["catalog_cache"].search_json(
            self.engine, self.user_name, q=query["q"], professions=query["professions"], categories=query["categories"],
            favorites_only=query["favorites"], limit=query["limit"], offset=query["offset"],
        ))


class RecentHandler(APIHandler):
    route = "api/v1/catalog/recent"

    @authorize(read_only=True)
    async def get(self):
        return {"tools": await catalog.recent(self.db, self.user_name)}


class TaxonomyHandler(APIHandler):
    route = "api/v1/taxonomy"

    @authorize(read_only=True)
    async def get(self):
        return await catalog.taxonomy(self.db, self.lang)


class FavoritesHandler(APIHandler):
    route = "api/v1/favorites"

    @authorize(read_only=True)
    async def get(self):
        return {"tools": await catalog.list_favorites(self.db, self.user_name)}


class FavoriteHandler(APIHandler):
    route = r"api/v1/favorites/(?P<tool_id>\d{1,18})"
    catalog_changes = "favorites"

    @authorize
    async def put(self, tool_id):
        await catalog.add_favorite(self.db, self.user_name, int(tool_id))

    @authorize
    async def delete(self, tool_id):
        await catalog.remove_favorite(self.db, self.user_name, int(tool_id))


default_handlers = routes(CatalogHandler, RecentHandler, TaxonomyHandler, FavoritesHandler, FavoriteHandler)
