"""Compiled Jinja templates shared by every page render of the Voila server.

Voila builds a new ``VoilaExporter`` for every page it renders (every pool refill pre-renders the next page), and
each exporter builds a new Jinja environment, so every template of the chain (the project's ``index.html.j2``,
``lab``, ``base``, nbconvert's ...) was parsed and compiled again for every page: ≈ 0.4–0.5 s of CPU per refill on
this machine (docs/voila-server.md). A process-wide in-memory bytecode cache makes only the first render in a
process compile. Jinja still compares each template's source checksum with the cached one, so an edited template
is compiled again.
"""

from __future__ import annotations

import hashlib

from jinja2.bccache import Bucket, BytecodeCache
from voila.exporter import VoilaExporter


def _environment_fingerprint(environment) -> str:
    """What, besides the source, decides the code Jinja generates. Jinja's cache key is only the template's name
    and file name, but one process may hold environments that compile the same file differently (Voila's exporter
    switches its environment to async after creating it; nbconvert's exporters are sync)."""
    autoescape = environment.autoescape
    finalize = environment.finalize
    parts = (
        environment.block_start_string,
        environment.block_end_string,
        environment.variable_start_string,
        environment.variable_end_string,
        environment.comment_start_string,
        environment.comment_end_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
        environment.trim_blocks,
        environment.lstrip_blocks,
        environment.newline_sequence,
        environment.keep_trailing_newline,
        environment.is_async,
        environment.optimized,
        tuple(sorted(environment.extensions)),
        getattr(autoescape, "__qualname__", repr(autoescape)),
        getattr(finalize, "__qualname__", repr(finalize)),
    )
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


class MemoryBytecodeCache(BytecodeCache):
    """Jinja bytecode kept in this process's memory, keyed by template and environment settings.

    ``compiles`` counts templates Jinja had to compile (a miss it then stored), ``hits`` those it did not.
    """

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}
        self.hits = 0
        self.compiles = 0

    def get_bucket(self, environment, name, filename, source) -> Bucket:
        key = self.get_cache_key(name, filename) + "-" + _environment_fingerprint(environment)
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        data = self._store.get(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)  # leaves bucket.code None if the source's checksum changed
            if bucket.code is not None:
                self.hits += 1

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiles += 1
        self._store[bucket.key] = bucket.bytecode_to_string()

    def clear(self) -> None:
        self._store.clear()


#: The one cache of this process.
BYTECODE_CACHE = MemoryBytecodeCache()


class CachedVoilaExporter(VoilaExporter):
    """``VoilaExporter`` whose Jinja environments share :data:`BYTECODE_CACHE`."""

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = BYTECODE_CACHE
        return environment


def install() -> None:
    """Make Voila's page renderer build :class:`CachedVoilaExporter` (``NotebookRenderer`` creates the exporter
    by the name it imported into its module; both the pool's pre-render and the cold path go through it)."""
    from voila import notebook_renderer

    notebook_renderer.VoilaExporter = CachedVoilaExporter
