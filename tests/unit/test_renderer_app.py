"""The app pieces: RunButton, StepHistory, SettingsPanel, SessionFilesChooser, ClearMemoryButton."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from runner_kernel.renderer import (ClearMemoryButton, RunButton, SessionFilesChooser, SettingsPanel,
                                    StepHistory)


def test_run_button_cannot_double_submit_a_synchronous_run():
    runs = []

    def on_run():
        runs.append(1)
        button.click()  # a second click arriving while the run is in flight
        button.button.click()
        assert button.running and button.button.disabled and button.button.description == "Running…"
        assert "skr-spinner" in button.status.value

    button = RunButton(on_run)
    assert "skr-run-button" in button.button._dom_classes
    button.button.click()
    assert runs == [1]
    assert not button.running and not button.button.disabled and button.button.description == "Run"
    button.button.click()
    assert runs == [1, 1]


async def test_run_button_stays_disabled_until_an_async_run_completes():
    release = asyncio.Event()
    runs = []

    async def on_run():
        runs.append(1)
        await release.wait()

    button = RunButton(on_run, lang="sv")
    button.button.click()
    button.button.click()
    button.click()
    await asyncio.sleep(0)
    assert runs == [1] and button.button.disabled and button.button.description == "Kör…"
    release.set()
    await asyncio.sleep(0.01)
    assert not button.button.disabled and button.button.description == "Kör"


async def test_run_button_re_enables_after_an_error():
    async def failing():
        raise RuntimeError("service down")

    button = RunButton(failing)
    button.click()
    await asyncio.sleep(0.01)
    assert not button.running and not button.button.disabled

    def failing_now():
        raise RuntimeError("bad")

    button = RunButton(failing_now)
    with pytest.raises(RuntimeError):
        button.click()
    assert not button.running and not button.button.disabled


def test_step_history_lists_steps_and_replays_on_click():
    selected = []
    history = StepHistory(on_select=lambda index, step: selected.append((index, step["payload"])))
    assert history.layout.display == "none"
    first = history.add(at=datetime(2025, 1, 2, 9, 5))
    assert history.steps[first]["button"].description == "1. Run · 09:05 · running"
    history.update(first, status="succeeded", payload={"status": "succeeded"})
    second = history.add("Grade", at=datetime(2025, 1, 2, 9, 7), status="failed", payload={"status": "failed"})
    buttons = [s["button"] for s in history.steps]
    assert buttons[0].description == "1. Run · 09:05 · done"
    assert buttons[1].description == "2. Grade · 09:07 · failed"
    assert "skr-step-failed" in buttons[1]._dom_classes
    buttons[0].click()
    assert selected == [(0, {"status": "succeeded"})]
    assert "skr-step-current" in buttons[0]._dom_classes and "skr-step-current" not in buttons[1]._dom_classes
    history.select(second)
    assert "skr-step-current" not in buttons[0]._dom_classes and selected[-1][0] == 1
    # a step added as the one on screen takes the marker from the previous one
    third = history.add("Again", status="succeeded", payload={"status": "succeeded"}, current=True)
    buttons = [s["button"] for s in history.steps]
    assert history.current == third and "skr-step-current" in buttons[2]._dom_classes
    assert "skr-step-current" not in buttons[1]._dom_classes
    # the step buttons share one layout and one style model (one widget per step for the page)
    assert buttons[0].layout is buttons[2].layout and buttons[0].style is buttons[2].style


def test_step_history_in_swedish():
    history = StepHistory(lang="sv")
    history.add(at=datetime(2025, 1, 2, 9, 5), status="timed_out")
    assert history.steps[0]["button"].description == "1. Körning · 09:05 · tog för lång tid"


SETTINGS = [{"name": "sep", "label": "Separator", "kind": "string", "required": True},
            {"name": "size", "label": "Group size", "kind": "integer", "min": 2, "default": 3}]


def test_settings_panel_saves_validated_values():
    saved = []
    panel = SettingsPanel(SETTINGS, values={"sep": " ; "}, on_save=saved.append)
    panel.save.button.click()
    assert saved == [{"sep": " ; ", "size": 3}]  # settings strings are not trimmed
    assert "Settings saved." in panel.message.value
    panel.form.views["size"].input.value = "1"
    panel.save.button.click()
    assert len(saved) == 1 and "at least 2" in panel.form.views["size"].error.value


async def test_settings_panel_shows_service_issues_from_an_async_save():
    async def on_save(values):
        return [{"path": "/sep", "message": "Not allowed here."}]

    panel = SettingsPanel(SETTINGS, values={"sep": "x"}, on_save=on_save, lang="sv")
    panel.save.button.click()
    assert panel.save.button.disabled
    await asyncio.sleep(0.01)
    assert "Not allowed here." in panel.form.views["sep"].error.value
    assert not panel.save.button.disabled and "sparats" not in panel.message.value


def test_session_files_chooser():
    files = [{"name": "class.csv", "bytes": 2048}]
    assert SessionFilesChooser.needed(files, uploads=0) and not SessionFilesChooser.needed(files, uploads=1)
    assert not SessionFilesChooser.needed([], uploads=0)
    chooser = SessionFilesChooser(files, lang="sv")
    assert chooser.value == "reuse" and chooser.reused_files == 1
    assert [label for label, _ in chooser.choice.options] == [
        "Kör utan filer", "Återanvänd sessionens filer", "Rensa sessionens filer"]
    assert "class.csv (2 kB)" in chooser.children[0].value
    chooser.choice.value = "clear"
    assert chooser.value == "clear" and chooser.reused_files == 0
    assert "skr-session-files" in chooser._dom_classes


def test_clear_memory_button():
    cleared = []
    button = ClearMemoryButton(lambda: cleared.append(1))
    button.button.click()
    assert cleared == [1] and "Memory cleared." in button.status.value
    assert "skr-clear-memory" in button.button._dom_classes


def test_renderer_catalogs_match_and_cover_the_code():
    import json
    import re
    from pathlib import Path

    import runner_kernel.renderer as pkg
    from skriptoteket_ext.i18n import LOCALE_DIR

    en = json.loads((LOCALE_DIR / "renderer.en.json").read_text(encoding="utf-8"))
    sv = json.loads((LOCALE_DIR / "renderer.sv.json").read_text(encoding="utf-8"))
    assert set(en) == set(sv)
    for key in en:
        assert sorted(re.findall(r"{(\w+)}", en[key])) == sorted(re.findall(r"{(\w+)}", sv[key])), key
    source = "".join(p.read_text(encoding="utf-8") for p in Path(pkg.__file__).parent.glob("*.py"))
    used = set(re.findall(r'"(renderer\.[a-z_.]+)"', source))
    dynamic = {k for k in en if k.startswith(("renderer.status.", "renderer.history.", "renderer.session_files."))}
    assert used <= set(en)
    assert set(en) - used - dynamic == set()
