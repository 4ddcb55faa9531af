"""Problems found in a schema or in submitted values, addressable and translatable.

An issue carries a JSON pointer (RFC 6901) to what is wrong, a stable ``code`` that is also the key in the
message catalogs (``locale/contract.<lang>.json``), and the ``params`` that fill the message. English text comes
from the same catalog, so there is exactly one wording per code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..i18n import translate
from .canonical import short


def pointer(*parts: str | int) -> str:
    """JSON pointer from path parts: pointer(2, "options", 0) == "/2/options/0"."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Issue:
    path: str
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.translated("en")

    def translated(self, lang: str) -> str:
        return translate(self.code, lang, **self.params)

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"path": self.path, "code": self.code, "params": dict(self.params), "message": self.translated(lang)}


def quoted_list(values, limit: int = 10) -> str:
    """'a', 'b' (+3 more): names inside messages stay short however many there are."""
    values = list(values)
    shown = ", ".join(f"'{short(v)}'" for v in values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")
