"""``skriptoteket seed`` against the real platform (hub, proxy, service, Postgres): prod seeds only curated tools,
a dry run changes nothing, dev creates every tool through the lifecycle as a published active version that a
teacher sees in the catalog, a second seed changes nothing, and a changed notebook becomes a new active version."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runner_kernel.authoring.notebook_format import read_tool_notebook, write_tool_notebook
from skriptoteket_ext import seed as seed_module
from skriptoteket_ext.launcher import Platform

from ..conftest import private_tmpdir
from ..e2e.conftest import platform, start_platform, stop_platform  # noqa: F401  (the session's running platform)

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]

BANK = Path(__file__).resolve().parents[2] / "notebooks" / "bank"
ALL = {p.stem: read_tool_notebook(p) for p in sorted(BANK.glob("*.ipynb"))}
CURATED = {slug for slug, tool in ALL.items() if tool.meta["curated"]}


def run_seed(platform, *args) -> tuple[int, str]:  # noqa: F811
    done = subprocess.run([sys.executable, "-m", "skriptoteket_ext.cli", "seed", *args], env=platform.env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def api(platform, user: str, *groups: str) -> httpx.Client:  # noqa: F811
    if user not in platform.passwords:
        platform.create_user(user, *groups)
    return httpx.Client(base_url=f"{platform.service_url}/api/v1/", timeout=30,
                        headers={"Authorization": f"token {platform.token_for(user)}"})


def snapshot(client: httpx.Client) -> dict:
    """Everything the seed could change: each tool's metadata and publication, and its versions."""
    tools = client.get("review/tools").raise_for_status().json()["tools"]
    out = {}
    for tool in tools:
        versions = client.get(f"tools/{tool['id']}/versions").raise_for_status().json()["versions"]
        out[tool["slug"]] = {
            "tool": {k: tool[k] for k in ("id", "title", "summary", "professions", "categories", "is_published",
                                          "updated_at", "owner")},
            "versions": [(v["id"], v["version_no"], v["state"]) for v in versions],
        }
    return out


def lines_for(output: str, action: str) -> set[str]:
    return {line.split()[1] for line in output.splitlines() if line.startswith(f"  {action} ")}


def test_seed_profiles_dry_run_idempotence_and_updates(platform, tmp_path):  # noqa: F811
    reviewer = api(platform, "seed-checker", "reviewers")
    teacher = api(platform, "seed-teacher")
    before = snapshot(reviewer)
    assert not set(before) & set(ALL)

    # prod: curated tools only, published, through the lifecycle
    code, out = run_seed(platform, "--profile", "prod", "--publish")
    assert code == 0, out
    assert lines_for(out, "create") == CURATED, out
    after_prod = snapshot(reviewer)
    assert set(after_prod) - set(before) == CURATED
    for slug in CURATED:
        tool = after_prod[slug]
        assert tool["tool"]["is_published"] and tool["tool"]["owner"] == seed_module.BOT
        # the lifecycle: v1 draft → in review → archived, v2 the active copy
        assert tool["versions"] == [(tool["versions"][0][0], 2, "active"), (tool["versions"][1][0], 1, "archived")]

    # dry run of dev: says it would create the demos, changes nothing
    code, out = run_seed(platform, "--profile", "dev", "--publish", "--dry-run")
    assert code == 0, out
    assert lines_for(out, "create") == set(ALL) - CURATED and lines_for(out, "unchanged") == CURATED, out
    assert "would create" in out and snapshot(reviewer) == after_prod

    # dev: every tool, a published active version with exactly the notebook's content
    code, out = run_seed(platform, "--profile", "dev", "--publish")
    assert code == 0, out
    assert lines_for(out, "create") == set(ALL) - CURATED and lines_for(out, "unchanged") == CURATED, out
    seeded = snapshot(reviewer)
    catalog = teacher.get("catalog", params={"limit": 100}).raise_for_status().json()["tools"]
    assert set(ALL) <= {t["slug"] for t in catalog}
    for slug, notebook in ALL.items():
        card = teacher.get(f"apps/{slug}", params={"context": "production"}).raise_for_status().json()
        assert card["tool"]["title"] == notebook.meta["title"]
        assert card["tool"]["usage_instructions"] == notebook.instructions
        assert card["version"]["input_schema"] == notebook.input_schema
        assert card["version"]["settings_schema"] == notebook.settings_schema
        tool_id = seeded[slug]["tool"]["id"]
        active = reviewer.get(f"tools/{tool_id}").raise_for_status().json()["active_version"]
        version = reviewer.get(f"tools/{tool_id}/versions/{active['id']}").raise_for_status().json()
        assert version["source"] == notebook.source and version["entrypoint"] == "run_tool"
        assert sorted(seeded[slug]["tool"]["professions"]) == sorted(notebook.meta["professions"])

    # again: nothing changes, and it says so
    code, out = run_seed(platform, "--profile", "dev", "--publish")
    assert code == 0, out
    assert "Nothing to change" in out and lines_for(out, "unchanged") == set(ALL), out
    assert snapshot(reviewer) == seeded

    # a changed notebook: a new active version (and a metadata patch), nothing else touched
    bank = tmp_path / "bank"
    shutil.copytree(BANK, bank)
    changed = read_tool_notebook(bank / "demo-table-order.ipynb")
    changed.source = changed.source.replace("Poäng på uppgift 10 och 2", "Poäng (uppgift 10 och 2)")
    changed.meta["summary"] += " Uppdaterad."
    write_tool_notebook(bank / "demo-table-order.ipynb", changed)
    local = Platform(home=platform.home, bind_url=platform.url, pg_port=int(platform.env["SKRIPTOTEKET_PG_PORT"]))
    buffer = io.StringIO()
    assert seed_module.seed(profile="dev", publish=True, platform=local, bank_dir=bank, out=buffer) == 0, buffer.getvalue()
    assert lines_for(buffer.getvalue(), "update") == {"demo-table-order"}, buffer.getvalue()
    assert "new active version (source)" in buffer.getvalue() and "metadata (summary)" in buffer.getvalue()
    updated = snapshot(reviewer)
    assert {s for s in updated if updated[s] != seeded[s]} == {"demo-table-order"}
    assert [state for _, _, state in updated["demo-table-order"]["versions"]] == ["active", "archived", "archived", "archived"]
    card = teacher.get("apps/demo-table-order", params={"context": "production"}).raise_for_status().json()
    assert card["tool"]["summary"].endswith("Uppdaterad.") and card["version"]["version_no"] == 4

    # a version someone else published is not overwritten without --force
    code, out = run_seed(platform, "--profile", "dev")
    assert code == 0 and "demo-table-order" in lines_for(out, "update"), out  # back to the bank's content
    author = api(platform, "seed-author", "reviewers")
    tool_id = updated["demo-table-order"]["tool"]["id"]
    head = author.get(f"tools/{tool_id}").raise_for_status().json()["head"]["id"]
    draft = author.post(f"tools/{tool_id}/versions", json={"expected_parent": head, "source": changed.source})
    draft.raise_for_status()
    code, out = run_seed(platform, "--profile", "dev")
    assert code == 0 and "demo-table-order" in lines_for(out, "skip") and "seed-author" in out, out


def test_up_seeds_the_bank_in_the_background_when_asked():
    """SKRIPTOTEKET_SEED=prod: ``skriptoteket up`` seeds the curated tools, published, once the hub answers."""
    path = Path(private_tmpdir("skr-seeded-"))
    running = start_platform(path / "home", extra_env={"SKRIPTOTEKET_SEED": "prod"})
    try:
        teacher = api(running, "seeded-teacher")
        deadline = time.monotonic() + 240
        slugs = set()
        while time.monotonic() < deadline and "Nothing to change" not in running.log() and not slugs >= CURATED:
            slugs = {t["slug"] for t in teacher.get("catalog", params={"limit": 100}).json()["tools"]}
            time.sleep(1)
        time.sleep(1)
        slugs = {t["slug"] for t in teacher.get("catalog", params={"limit": 100}).json()["tools"]}
        assert slugs == CURATED, running.log()[-3000:]
        assert "Seeding the example bank (prod:" in running.log() and "0 failed" in running.log()
    finally:
        stop_platform(running)
        running.postgres.stop(mode="immediate")
        shutil.rmtree(path, ignore_errors=True)
