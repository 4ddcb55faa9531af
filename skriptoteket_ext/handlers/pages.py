"""Server-rendered pages (Jinja2, in JupyterHub's look)."""

from __future__ import annotations

from jupyterhub.services.auth import HubOAuthCallbackHandler

from ..i18n import LANGUAGES
from ..scopes import needs_scope, roles_of
from .base import BaseHandler


class CatalogPage(BaseHandler):
    """The landing page after login: the catalog of published tools."""

    @needs_scope()
    async def get(self) -> None:
        lang = self.get_argument("lang", None)
        if lang in LANGUAGES:
            self.set_cookie("skriptoteket-lang", lang, path=self.config.base_url, samesite="Lax", httponly=True)
        self.render_page("catalog.html", tools=[], roles=sorted(roles_of(self.current_user)))


default_handlers = [
    (r"", CatalogPage),
    (r"oauth_callback", HubOAuthCallbackHandler),
]
