"""Import diet for the teacher's Voila server (``runner_kernel.singleuser``); docs/docker.md, "Measured".

Two tools, both for modules the server imports through its libraries but never uses:

- a *stand-in* replaces a module only while ``jupyterhub.singleuser.extension`` is imported, and is removed right
  after, so a later real import gets the real module;
- a *deferred* module is the real module, registered at once but run at the first use of one of its own
  attributes (``from X import name``, ``X.name``, ``isinstance(o, X.Cls)``); until then it costs nothing. Unlike
  ``importlib.util.LazyLoader``, whose modules run at *any* attribute access, it keeps the import system's
  attributes (``__spec__``, ``__path__``, ...): an ``import X`` statement reads ``X.__spec__``, so a LazyLoader
  module runs at every import site.

``loaded(name)`` tells whether a deferred module has run. tests/unit/test_standins.py checks the semantics;
tests/e2e/test_singleuser.py checks a running server (SQLAlchemy's compiled modules never mapped).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import sys
import threading
import types

import tornado.web

#: Modules deferred before the server imports anything, and why it never runs them. Submodules imported inside the
#: window, while the hub extension is imported (sqlalchemy.exc, sqlalchemy.util, IPython.paths), run; the package
#: itself runs at its first use.
DEFERRED = {
    # jupyterhub.scopes and jupyterhub.metrics import the hub's database model (`from . import orm, roles`, `import
    # sqlalchemy as sa`) for functions that take a hub database session or ORM objects; the single-user side uses
    # only `scopes._intersect_expanded_scopes(required, have)` (no db: orm untouched) and the metrics' Histograms.
    "jupyterhub.orm": "hub database model",
    "jupyterhub.roles": "hub roles (database)",
    # jupyterhub.utils: `from sqlalchemy.exc import SQLAlchemyError` (for the hub's catch_db_error) runs the
    # sqlalchemy.exc submodule only, not the package.
    "sqlalchemy": "hub database",
    # jupyterlab_server.listings_handler (imported for Voila's ThemesHandler) calls requests only to fetch
    # extension listings for JupyterLab's extension manager.
    "requests": "extension listings (JupyterLab)",
    # jupyter_client's KernelSpecManager adds ~/.ipython/kernels with `from IPython.paths import get_ipython_dir`;
    # the submodule is imported inside the window (WINDOW_IMPORTS) instead of after IPython's __init__, which
    # imports the interactive shell (66 modules) that this server never starts (its kernels are other processes).
    "IPython": "the interactive shell (kernels only)",
    # Imported as `import X` by libraries the server uses, and used only inside functions this server does not call
    # (faithful either way: they run when called). Registered before the server's first import (defer_unused()).
    # jsonschema's format checkers (jupyter_events validates the server's events): durations (isoduration parses
    # with arrow), CSS colours, URI templates; none of the server's event schemas has such a field.
    "arrow": "jsonschema 'duration' format",
    "webcolors": "jsonschema 'color' format",
    "uri_template": "jsonschema 'uri-template' format",
    # BeautifulSoup (nbconvert's HTML exporter): CSS selectors (.select()) and the encoding detection of bytes input;
    # nbconvert passes str and uses find_all.
    "soupsieve": "BeautifulSoup CSS selectors",
    "charset_normalizer": "BeautifulSoup encoding detection",
    # jupyterlab_server (Voila's themes handler imports it): .json5 settings files, JupyterLab's translations.
    "json5": "JupyterLab .json5 settings",
    "babel": "JupyterLab translations",
    # jupyterhub.utils imports aiohttp for the hub's wait_for_http_server(); the server's own hub requests (HubAuth)
    # go over tornado (the jupyterhub.httpclient stand-in below, runner_kernel/hub_http.py).
    "aiohttp": "the hub's HTTP client (hub side only)",
    # jupyter_server.gateway (imported by its ServerApp) talks to a remote kernel gateway with websocket-client;
    # this server's kernels are local.
    "websocket": "kernel gateway client",
}

#: Submodules of deferred packages the server uses, imported inside the window (so without running the package).
WINDOW_IMPORTS = ("IPython.paths",)


class _DeferredModule(types.ModuleType):
    def __getattr__(self, attr):
        # only attributes the module does not have (yet) come here
        if _window_open:
            # a submodule being imported (`from .. import exc` in sqlalchemy.util while sqlalchemy.exc loads) is what
            # the import system would find in sys.modules
            submodule = sys.modules.get(f"{self.__name__}.{attr}")
            if submodule is not None:
                return submodule
        _run(self)  # run it, then look again
        return getattr(self, attr)


class _RunningModule(types.ModuleType):
    """A deferred module while its code runs. In the thread running it, a plain partially initialised module (its
    own code and its submodules' imports see what the import system would show them); another thread's first use
    waits until it has run instead of finding its attributes missing."""

    def __getattr__(self, attr):
        with _locks[self.__name__]:  # held by the running thread until it is done; that thread passes (reentrant)
            pass
        if type(self) is _RunningModule:  # the running thread: not defined (yet)
            raise AttributeError(f"partially initialized module {self.__name__!r} has no attribute {attr!r}")
        return getattr(self, attr)


# One lock per module, as CPython's LazyLoader has since 3.12 (gh-114763): a thread waits only for the module it
# uses, not for another deferred module that some other thread happens to be running.
_locks: dict[str, threading.RLock] = {}
_deferred: set[str] = set()
_window_open = False


def _run(module: types.ModuleType) -> None:
    with _locks[module.__name__]:
        if type(module) is not _DeferredModule:
            return  # another thread ran it (or this thread is running it)
        module.__class__ = _RunningModule
        try:
            module.__spec__.loader.exec_module(module)
        except BaseException:
            if sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]
            raise
        finally:
            module.__class__ = types.ModuleType


class _RunPackageFirst(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Outside the window, importing a submodule of a deferred package runs the package first, as the import system
    always does (sqlalchemy's ``__init__`` wires its submodules together). The package may import that very
    submodule while it runs: then the import system gets the module it made instead of making a second copy."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if _window_open:
            return None
        for name in list(_deferred):
            package = sys.modules.get(name)
            if fullname.startswith(name + ".") and type(package) is _DeferredModule:
                _run(package)
                module = sys.modules.get(fullname)
                if module is not None:
                    # the import system loads a module found meanwhile again, from its __spec__: make that ours
                    self._specs[fullname] = module.__spec__
                    module.__spec__ = importlib.util.spec_from_loader(fullname, self)
                    return module.__spec__
        return None

    def create_module(self, spec):
        return sys.modules[spec.name]

    def exec_module(self, module):
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)  # its own again


def defer(name: str) -> types.ModuleType | None:
    """Register ``name`` as a deferred module (a no-op when it is imported already or not installed)."""
    if name in sys.modules:
        return sys.modules[name]
    parent, _, child = name.rpartition(".")
    if parent and parent not in sys.modules:
        importlib.import_module(parent)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return None
    if not any(isinstance(finder, _RunPackageFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RunPackageFirst())
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredModule
    _locks.setdefault(name, threading.RLock())
    _deferred.add(name)
    sys.modules[name] = module
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def import_without(name: str, blocked: str) -> None:
    """Import ``name`` while ``blocked`` cannot be imported, for a library that registers an optional accelerator
    when it imports and this server never uses it (a ``None`` in sys.modules makes ``import blocked`` raise the
    ImportError such libraries expect). Afterwards ``blocked`` imports as usual. Used for BeautifulSoup, which
    registers an lxml tree builder (~4 MB in the server) while nbconvert always parses with ``html.parser``."""
    if name in sys.modules or blocked in sys.modules:
        return
    sys.modules[blocked] = None
    try:
        importlib.import_module(name)
    finally:
        if sys.modules.get(blocked, 0) is None:
            del sys.modules[blocked]


def loaded(name: str) -> bool:
    """Whether ``name`` is imported and has run (False for a deferred module that is still waiting)."""
    module = sys.modules.get(name)
    return module is not None and type(module) not in (_DeferredModule, _RunningModule)


def defer_unused() -> None:
    """Defer every module in DEFERRED: call before the server imports its libraries."""
    for name in DEFERRED:
        defer(name)


@contextlib.contextmanager
def deferring(names):
    """Defer ``names`` for good; inside the block, their submodules import without running them (see DEFERRED)."""
    global _window_open
    _window_open = True
    try:
        for name in names:
            defer(name)
        yield
    finally:
        _window_open = False


def import_hub_extension():
    """``jupyterhub.singleuser.extension`` without the hub's request handlers, and with its database deferred.

    Through ``jupyterhub.log`` it imports ``jupyterhub.handlers`` (the hub's pages, login, base handler, ...) for one
    ``isinstance(handler, HealthCheckHandler)`` when logging, a handler a single-user server never has: a stand-in
    during this one import. Without it, that is about a sixth of the server's import time and 7 MB of its memory.
    ``jupyterhub.httpclient`` (aiohttp) is the other stand-in: see runner_kernel/hub_http.py.
    The hub's database (``jupyterhub.orm``, SQLAlchemy, and alembic through orm), requests and IPython's shell are
    deferred: see ``DEFERRED``.
    """
    stand_ins = {}
    if "jupyterhub.handlers" not in sys.modules:
        pages = types.ModuleType("jupyterhub.handlers.pages")
        pages.HealthCheckHandler = type("HealthCheckHandler", (tornado.web.RequestHandler,), {})
        package = types.ModuleType("jupyterhub.handlers")
        package.__path__, package.pages = [], pages
        stand_ins.update({"jupyterhub.handlers": package, "jupyterhub.handlers.pages": pages})
    if "jupyterhub.httpclient" not in sys.modules:
        # HubAuth's requests to the hub over tornado instead of aiohttp (runner_kernel/hub_http.py): the modules
        # that import it during this one import (the hub extension, HubAuth, jupyterhub.utils) keep this fetch
        from . import hub_http

        client = types.ModuleType("jupyterhub.httpclient")
        client.fetch = hub_http.fetch
        stand_ins["jupyterhub.httpclient"] = client
    sys.modules.update(stand_ins)
    try:
        with deferring(DEFERRED):
            from jupyterhub.singleuser import extension

            for name in WINDOW_IMPORTS:
                importlib.import_module(name)
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return extension
