"""runner_kernel.template_cache: the Voila server compiles its page templates once per process, not per render."""

from __future__ import annotations

import shutil

import jinja2
import nbformat
import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from traitlets.config import Config
from voila import notebook_renderer
from voila.configuration import VoilaConfiguration
from voila.paths import collect_template_paths

from runner_kernel import template_cache
from runner_kernel.singleuser import DEFAULT_NOTEBOOK, PROJECT_TEMPLATES
from runner_kernel.template_cache import CachedVoilaExporter, MemoryBytecodeCache


@pytest.fixture
def cache(monkeypatch):
    fresh = MemoryBytecodeCache()
    monkeypatch.setattr(template_cache, "BYTECODE_CACHE", fresh)
    return fresh


def _template_paths(own):
    return [str(own), *collect_template_paths(["voila", "nbconvert"], "lab", prune=True)]


async def _render(template_paths) -> str:
    """One page as Voila's renderer draws it, with a new exporter (as Voila makes for every page), minus the
    kernel: the template's kernel/cell callbacks are stand-ins."""
    exporter = CachedVoilaExporter(
        template_paths=template_paths, template_name="skriptoteket", base_url="/user/a/", theme="light"
    )
    exporter.exclude_input = True
    context = {
        "frontend": "voila",
        "main_js": "voila.js",
        "kernel_start": lambda nb: "kernel-id",
        "notebook_execute": lambda nb, kernel_id: None,
        "cell_generator": lambda nb, kernel_id: iter(()),
        "progressive_rendering": False,
    }
    resources = {"base_url": "/user/a/", "theme": "light", "template": "skriptoteket", "metadata": {"name": "t"}}
    nb = nbformat.read(str(DEFAULT_NOTEBOOK), as_version=4)
    parts = []
    async for html, _ in exporter.generate_from_notebook_node(
        nb, resources={**resources, "page_config": {}}, extra_context=context, page_config={}
    ):
        parts.append(html)
    return "".join(parts)


async def test_second_render_in_a_process_compiles_nothing(cache):
    paths = _template_paths(PROJECT_TEMPLATES / "skriptoteket")
    first = await _render(paths)
    compiled = cache.compiles
    assert compiled >= 5, compiled  # the project's template, lab's, base's, nbconvert's macros ...
    assert cache.hits == 0

    second = await _render(paths)
    assert cache.compiles == compiled  # nothing compiled again
    assert cache.hits >= compiled
    assert len(second) == len(first) and "skr-" in second


async def test_an_edited_template_is_compiled_again(cache, tmp_path):
    own = tmp_path / "skriptoteket"
    shutil.copytree(PROJECT_TEMPLATES / "skriptoteket", own)
    paths = _template_paths(own)
    assert "EDITED-MARKER" not in await _render(paths)
    compiled = cache.compiles

    index = own / "index.html.j2"
    source = index.read_text()
    assert '<header class="skr-brand"' in source
    index.write_text(source.replace('<header class="skr-brand"', 'EDITED-MARKER<header class="skr-brand"', 1))
    html = await _render(paths)
    assert "EDITED-MARKER" in html
    assert cache.compiles == compiled + 1  # only the edited template


def test_environments_that_compile_differently_do_not_share_code(cache):
    loader = jinja2.DictLoader({"t": "{{ 1 + 1 }}"})
    sync = jinja2.Environment(loader=loader, bytecode_cache=cache)
    asynchronous = jinja2.Environment(loader=loader, bytecode_cache=cache, enable_async=True)
    assert sync.get_template("t").render() == "2"
    assert cache.compiles == 1
    jinja2.Environment(loader=loader, bytecode_cache=cache).get_template("t")
    assert cache.compiles == 1 and cache.hits == 1
    asynchronous.get_template("t")
    assert cache.compiles == 2  # async code is never handed to a sync environment, nor the reverse


async def test_install_makes_voilas_renderer_use_the_cache(monkeypatch):
    monkeypatch.setattr(notebook_renderer, "VoilaExporter", notebook_renderer.VoilaExporter)  # undone after
    template_cache.install()
    renderer = notebook_renderer.NotebookRenderer(
        voila_configuration=VoilaConfiguration(template="skriptoteket", attempt_fix_notebook=False),
        traitlet_config=Config(),
        notebook_path=DEFAULT_NOTEBOOK.name,
        template_paths=_template_paths(PROJECT_TEMPLATES / "skriptoteket"),
        contents_manager=AsyncLargeFileManager(root_dir=str(DEFAULT_NOTEBOOK.parent)),
        base_url="/",
        page_config={},
    )
    await renderer.initialize()
    assert isinstance(renderer.exporter, CachedVoilaExporter)
    assert renderer.exporter.environment.bytecode_cache is template_cache.BYTECODE_CACHE
