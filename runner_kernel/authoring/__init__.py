"""Authoring tools in notebooks (docs/authoring.md): the authoring library, its IPython magics, the live
preview, and the notebook format (``notebook_format``, docs/authoring-format.md).

In JupyterLab::

    %load_ext runner_kernel.authoring      # gives `skr` and the %skr_* / %%skr_* magics
    %skr_new "Group maker"                 # or skr.create_tool(...): a new tool and its notebook
    skr.open("group-maker")                # the draft head into a NEW notebook (takes the draft lock)
    %skr_preview                           # the tool as teachers see it, unsaved content, in the sandbox
    skr.validate(); skr.save(); skr.submit(); skr.versions(); skr.diff()

Importing this package is light: the library, the service client and the preview load on first use.
"""

from __future__ import annotations

_skr = None


def get_authoring():
    """This kernel's ``Authoring`` session (one per kernel)."""
    global _skr
    if _skr is None:
        from .library import Authoring

        _skr = Authoring()
    return _skr


def load_ipython_extension(ipython) -> None:
    from . import assistant, magics
    from .preview import warm_up

    skr = get_authoring()
    magics.register(ipython, skr)
    assistant.register(ipython, skr)
    ipython.user_ns["skr"] = skr
    warm_up()


def __getattr__(name):
    if name in ("Authoring", "HeadMoved"):
        from . import library

        return getattr(library, name)
    if name == "AuthoringError":
        from .service import AuthoringError

        return AuthoringError
    raise AttributeError(name)
