"""Message catalogs for English and Swedish.

Catalogs are JSON files in ``locale/`` named ``<area>.<lang>.json`` (for example ``pages.sv.json``); all files
of one language are merged. Keys are stable identifiers, values are ``str.format`` templates. A key missing
in a language falls back to English, and a key missing everywhere is returned as-is so a gap is visible
rather than fatal.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "sv")
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(LOCALE_DIR.glob(f"*.{lang}.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def normalize_language(value: str | None) -> str:
    """Pick a supported language from a value such as ``sv``, ``sv-SE`` or an Accept-Language header."""
    if not value:
        return DEFAULT_LANGUAGE
    for part in value.split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def translate(key: str, lang: str = DEFAULT_LANGUAGE, /, **params: object) -> str:
    # positional-only: a message may have parameters named "key" or "lang"
    template = catalog(lang).get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
    return template.format(**params) if params else template


def translator(lang: str):
    """A ``_(key, **params)`` function bound to one language, for templates and handlers."""
    lang = normalize_language(lang)

    def _(key: str, /, **params: object) -> str:
        return translate(key, lang, **params)

    return _
