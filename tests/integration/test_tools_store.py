"""The tools store against a real PostgreSQL: every operation is one transaction, the rules of ``lifecycle``
hold on real rows, and concurrent reviewers cannot make two versions active."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa

from skriptoteket_ext import catalog, db, maintainers, migrate, suggestions
from skriptoteket_ext import tables as t
from skriptoteket_ext import tools as store
from skriptoteket_ext.db import create_engine
from skriptoteket_ext.errors import ApiError

pytestmark = pytest.mark.timeout(120)

SCHEMA = [{"kind": "string", "name": "who", "label": "Who"}]


@pytest.fixture
async def engine(fresh_db_url):
    migrate.upgrade(fresh_db_url)
    engine = create_engine(fresh_db_url)
    yield engine
    await engine.dispose()


async def tx(engine, fn, *args, **kwargs):
    async with engine.begin() as conn:
        return await fn(conn, *args, **kwargs)


def code_of(excinfo) -> str:
    return excinfo.value.code


async def new_tool(engine, owner="ada", **body):
    body = {"title": "Group maker", "summary": "Make groups", "professions": ["teacher"],
            "categories": ["lesson-planning"], **body}
    return await tx(engine, store.create_tool, owner, body)


async def save(engine, tool_id, parent, actor="ada", **content):
    content = {"source": "def run_tool(i, o):\n    return {}\n", "input_schema": SCHEMA, **content}
    return await tx(engine, store.save_draft, tool_id, actor, content, parent)


async def ready_tool(engine, slug="group-maker"):
    """A tool with a real slug and one version in review."""
    tool = await new_tool(engine)
    await tx(engine, store.update_tool, tool["id"], "rita", {"slug": slug}, reviewer=True)
    v1 = await save(engine, tool["id"], None)
    await tx(engine, store.submit, tool["id"], v1["id"], "ada")
    return tool, v1


async def test_create_sets_placeholder_slug_owner_and_maintainer(engine):
    tool = await new_tool(engine)
    assert tool["slug"] == f"draft-{tool['id']}"
    assert tool["owner"] == "ada" and tool["maintainers"] == ["ada"]
    assert tool["professions"] == ["teacher"] and tool["categories"] == ["lesson-planning"]
    assert tool["head"] is None and tool["active_version"] is None
    assert [e["action"] for e in await tx(engine, store.events, tool["id"])] == ["create"]


async def test_create_refuses_bad_input_and_writes_nothing(engine):
    for body, code in (
        ({"title": "x" * 201}, "too_long"),
        ({"title": "  "}, "field_required"),
        ({"title": "ok", "summary": "s" * 1001}, "too_long"),
        ({"title": "ok", "professions": ["astronaut"]}, "unknown_taxonomy"),
        ({"title": "ok", "slug": "nope"}, "unknown_fields"),
    ):
        with pytest.raises(ApiError) as err:
            await tx(engine, store.create_tool, "ada", body)
        assert code_of(err) == code
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(t.tools))).scalar_one() == 0


async def test_save_chain_head_moved_and_schema_issues(engine):
    tool = await new_tool(engine)
    tid = tool["id"]
    v1 = await save(engine, tid, None)
    assert v1["version_no"] == 1 and v1["state"] == "draft" and v1["parent_version_id"] is None
    v2 = await save(engine, tid, v1["id"], source="print(2)")
    assert v2["version_no"] == 2 and v2["parent_version_id"] == v1["id"]
    assert v2["input_schema"] == SCHEMA  # fields not sent come from the parent
    assert (await tx(engine, store.get_version, tid, v1["id"]))["state"] == "archived"  # superseded
    with pytest.raises(ApiError) as err:
        await save(engine, tid, v1["id"])  # stale parent
    assert err.value.status == 409 and code_of(err) == "head_moved" and err.value.details["head"] == v2["id"]
    with pytest.raises(ApiError) as err:
        store.validate_content({"input_schema": [{"kind": "nope", "name": "x"}], "settings_schema": "x"})
    assert code_of(err) == "invalid_schema"
    paths = [i["path"] for i in err.value.details["issues"]]
    assert any(p.startswith("/input_schema/0") for p in paths) and "/settings_schema" in paths


async def test_full_review_cycle(engine):
    tool, v1 = await ready_tool(engine)
    tid = tool["id"]
    assert [q["version"]["id"] for q in await tx(engine, store.review_queue)] == [v1["id"]]
    # request changes: v1 archived, a new draft copying the content, carrying the message
    draft = await tx(engine, store.request_changes, tid, v1["id"], "rita", "Please add a label")
    assert draft["state"] == "draft" and draft["change_message"] == "Please add a label"
    assert draft["source"] == v1["source"] and draft["derived_from_version_id"] == v1["id"]
    old = await tx(engine, store.get_version, tid, v1["id"])
    assert old["state"] == "archived" and old["reviewed_by"] == "rita" and old["reviewed_at"]
    # resubmit, publish (copy-on-activate)
    v3 = await save(engine, tid, draft["id"], source="print(3)")
    submitted = await tx(engine, store.submit, tid, v3["id"], "ada")
    assert submitted["submitted_by"] == "ada" and submitted["submitted_at"]
    with pytest.raises(ApiError) as err:
        await tx(engine, store.publish_tool, tid, "rita")
    assert code_of(err) == "no_active_version"
    active = await tx(engine, store.publish_version, tid, v3["id"], "rita", None)
    assert active["state"] == "active" and active["was_active"] and active["derived_from_version_id"] == v3["id"]
    assert active["source"] == "print(3)" and active["version_no"] == 4
    assert (await tx(engine, store.get_version, tid, v3["id"]))["state"] == "archived"
    # publish the tool: the slug is locked forever
    published = await tx(engine, store.publish_tool, tid, "rita")
    assert published["is_published"] and published["slug_locked"] and published["published_by"] == "rita"
    with pytest.raises(ApiError) as err:
        await tx(engine, store.update_tool, tid, "rita", {"slug": "other"}, reviewer=True)
    assert code_of(err) == "slug_locked"
    with pytest.raises(ApiError) as err:
        await tx(engine, store.update_tool, tid, "ada", {"title": "New"}, reviewer=False)
    assert code_of(err) == "metadata_reviewers_only"
    assert (await tx(engine, store.update_tool, tid, "rita", {"title": "New"}, reviewer=True))["title"] == "New"
    # depublish keeps the slug and the active version
    down = await tx(engine, store.depublish_tool, tid, "rita")
    assert not down["is_published"] and down["slug_locked"] and down["active_version"]["id"] == active["id"]
    actions = [e["action"] for e in await tx(engine, store.events, tid)]
    for action in ("create", "slug_change", "submit", "request_changes", "publish_version", "publish", "metadata_edit", "depublish"):
        assert action in actions


async def test_second_publish_and_rollback(engine):
    tool, v1 = await ready_tool(engine)
    tid = tool["id"]
    a1 = await tx(engine, store.publish_version, tid, v1["id"], "rita", None)
    v3 = await save(engine, tid, a1["id"], source="print('v3')")
    await tx(engine, store.submit, tid, v3["id"], "ada")
    a2 = await tx(engine, store.publish_version, tid, v3["id"], "rita", a1["id"])
    states = {v["id"]: v["state"] for v in await tx(engine, store.list_versions, tid)}
    assert list(states.values()).count("active") == 1 and states[a1["id"]] == "archived"
    # roll back to a review snapshot (never active): refused; to the old active copy: fine
    with pytest.raises(ApiError) as err:
        await tx(engine, store.rollback, tid, v1["id"], "root")
    assert code_of(err) == "not_once_active"
    with pytest.raises(ApiError) as err:
        await tx(engine, store.rollback, tid, a2["id"], "root")  # the current active is not archived
    assert code_of(err) == "not_once_active"
    back = await tx(engine, store.rollback, tid, a1["id"], "root")
    assert back["state"] == "active" and back["source"] == a1["source"] and back["derived_from_version_id"] == a1["id"]
    assert (await tx(engine, store.get_version, tid, a2["id"]))["state"] == "archived"
    diff = await tx(engine, store.diff, tid, v3["id"])
    assert diff["base"]["id"] == back["id"] and diff["changed"] == ["source"]
    assert "-def run_tool" in diff["diffs"]["source"] and "+print('v3')" in diff["diffs"]["source"]


async def test_two_reviewers_publish_at_the_same_moment(engine):
    """Two versions in review; two reviewers publish one each, concurrently: exactly one wins."""
    tool, v1 = await ready_tool(engine)
    tid = tool["id"]
    v2 = await save(engine, tid, v1["id"], source="print('second')")
    await tx(engine, store.submit, tid, v2["id"], "ada")

    async def publish(version_id, reviewer):
        async with engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(0.05)"))  # both transactions are open before either locks
            return await store.publish_version(conn, tid, version_id, reviewer, None)

    results = await asyncio.gather(publish(v1["id"], "rita"), publish(v2["id"], "rolf"), return_exceptions=True)
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert isinstance(losses[0], ApiError) and losses[0].status == 409 and losses[0].code == "conflict"
    states = [v["state"] for v in await tx(engine, store.list_versions, tid)]
    assert states.count("active") == 1


async def test_the_database_backs_the_one_active_rule(engine):
    """Even past the service's row lock, the partial unique index refuses a second active version, and the
    store reports it as a 409 conflict."""
    tool, v1 = await ready_tool(engine)
    active = await tx(engine, store.publish_version, tid := tool["id"], v1["id"], "rita", None)
    with pytest.raises(ApiError) as err:
        async with engine.begin() as conn:
            with store.constraint_errors():
                await conn.execute(sa.insert(t.tool_versions).values(
                    tool_id=tid, version_no=99, state="active", was_active=True, created_by="x"))
    assert err.value.status == 409 and err.value.code == "conflict"
    assert active["state"] == "active"


async def test_submit_needs_slug_and_taxonomy(engine):
    tool = await new_tool(engine, professions=[], categories=[])
    v1 = await save(engine, tool["id"], None)
    with pytest.raises(ApiError) as err:
        await tx(engine, store.submit, tool["id"], v1["id"], "ada")
    assert code_of(err) == "slug_required"
    await tx(engine, store.update_tool, tool["id"], "rita", {"slug": "x-tool"}, reviewer=True)
    with pytest.raises(ApiError) as err:
        await tx(engine, store.submit, tool["id"], v1["id"], "ada")
    assert code_of(err) == "taxonomy_required"
    other = await new_tool(engine)
    # maintainers may set the slug of a tool that was never published
    renamed = await tx(engine, store.update_tool, other["id"], "ada", {"slug": "mine"}, reviewer=False)
    assert renamed["slug"] == "mine"
    with pytest.raises(ApiError) as err:
        await tx(engine, store.update_tool, other["id"], "rita", {"slug": "x-tool"}, reviewer=True)
    assert err.value.status == 409 and code_of(err) == "slug_taken"
    for bad in ("Bad", "a--b", "-a", "a" * 129, "draft-12", ""):
        with pytest.raises(ApiError) as err:
            await tx(engine, store.update_tool, other["id"], "rita", {"slug": bad}, reviewer=True)
        assert code_of(err) == "slug_invalid", bad


async def test_draft_locks(engine):
    tool = await new_tool(engine)
    tid = tool["id"]
    lock = await tx(engine, store.acquire_lock, tid, "ada")
    assert lock["holder"] == "ada" and lock["forced_by"] is None
    renewed = await tx(engine, store.acquire_lock, tid, "ada")
    assert renewed["expires_at"] >= lock["expires_at"]
    await tx(engine, store.create_tool, "bo", {"title": "other"})  # bo exists as a user
    await tx(engine, maintainers.add, tid, "bo", "rita", "pair work")
    with pytest.raises(ApiError) as err:
        await tx(engine, store.acquire_lock, tid, "bo")
    assert err.value.status == 423 and code_of(err) == "locked" and err.value.params["holder"] == "ada"
    with pytest.raises(ApiError) as err:
        await save(engine, tid, None, actor="bo")
    assert code_of(err) == "locked"
    taken = await tx(engine, store.acquire_lock, tid, "rita", force=True)
    assert taken["holder"] == "rita" and taken["forced_by"] == "rita"
    assert any(e["action"] == "lock_taken_over" and e["details"]["previous_holder"] == "ada"
               for e in await tx(engine, store.events, tid))
    with pytest.raises(ApiError):
        await tx(engine, store.release_lock, tid, "ada")
    await tx(engine, store.release_lock, tid, "rita")
    assert await tx(engine, store.get_lock, tid) is None
    # an expired lock is simply taken
    await tx(engine, store.acquire_lock, tid, "ada", seconds=1)
    await asyncio.sleep(1.2)
    assert (await tx(engine, store.acquire_lock, tid, "bo"))["holder"] == "bo"


async def test_suggestions(engine):
    s = await tx(engine, suggestions.create, "tina", {"title": "Seat planner", "description": "Seats", "professions": ["teacher"], "categories": ["other"]})
    assert s["status"] == "pending" and s["professions"] == ["teacher"]
    with pytest.raises(ApiError) as err:
        await tx(engine, suggestions.decide, s["id"], "rita", "denied", "  ")
    assert code_of(err) == "field_required"
    accepted = await tx(engine, suggestions.decide, s["id"], "rita", "accepted")
    assert accepted["status"] == "accepted" and accepted["tool_id"]
    tool = await tx(engine, store.get_tool, accepted["tool_id"])
    assert tool["owner"] == "tina" and tool["maintainers"] == ["tina"] and tool["categories"] == ["other"]
    assert tool["created_by"] == "rita"
    with pytest.raises(ApiError) as err:
        await tx(engine, suggestions.decide, s["id"], "rolf", "denied", "no")
    assert err.value.status == 409 and code_of(err) == "already_decided"
    s2 = await tx(engine, suggestions.create, "tina", {"title": "Other"})
    denied = await tx(engine, suggestions.decide, s2["id"], "rita", "denied", "Exists already")
    assert denied["decisions"][0]["rationale"] == "Exists already"
    assert {x["id"] for x in await tx(engine, suggestions.listing, user="tina")} == {s["id"], s2["id"]}


async def test_maintainers_audit(engine):
    tool = await new_tool(engine)
    tid = tool["id"]
    with pytest.raises(ApiError) as err:
        await tx(engine, maintainers.add, tid, "bo", "rita", "")
    assert code_of(err) == "field_required"
    await tx(engine, maintainers.add, tid, "bo", "rita", "helps out")
    with pytest.raises(ApiError) as err:
        await tx(engine, maintainers.add, tid, "bo", "rita", "again")
    assert code_of(err) == "already_maintainer"
    with pytest.raises(ApiError) as err:
        await tx(engine, maintainers.remove, tid, "ada", "rita", "bye")
    assert code_of(err) == "owner_not_removable"
    result = await tx(engine, maintainers.remove, tid, "bo", "rita", "left the school")
    assert [m["user"] for m in result["maintainers"]] == ["ada"]
    assert [(a["action"], a["user"], a["reason"], a["actor"]) for a in result["audit"]] == [
        ("add", "bo", "helps out", "rita"), ("remove", "bo", "left the school", "rita")]


async def test_catalog_search_filters_favorites_recent(engine):
    async def published(title, summary, prof, cat):
        tool = await new_tool(engine, title=title, summary=summary, professions=prof, categories=cat)
        slug = title.lower().replace(" ", "-")
        await tx(engine, store.update_tool, tool["id"], "rita", {"slug": slug}, reviewer=True)
        v = await save(engine, tool["id"], None)
        await tx(engine, store.submit, tool["id"], v["id"], "ada")
        await tx(engine, store.publish_version, tool["id"], v["id"], "rita", None)
        await tx(engine, store.publish_tool, tool["id"], "rita")
        return tool["id"]

    a = await published("Gruppindelning", "Dela klassen i grupper", ["teacher"], ["lesson-planning"])
    b = await published("Mentor notes", "Notes for mentoring talks", ["teacher", "principal"], ["mentoring"])
    c = await published("Mail extractor", "Guardians e-mail addresses", ["school-administrator"], ["administration"])
    await new_tool(engine, title="Gruppindelning draft")  # unpublished: never listed

    async def titles(**kw):
        return [x["title"] for x in (await tx(engine, catalog.search, "tina", **kw))["tools"]]

    assert await titles() == ["Gruppindelning", "Mail extractor", "Mentor notes"]
    assert await titles(q="grupp") == ["Gruppindelning"]
    assert await titles(q="notes ment") == ["Mentor notes"]
    assert await titles(q="e-mail") == ["Mail extractor"]
    assert await titles(q="'&|!:*()") == ["Gruppindelning", "Mail extractor", "Mentor notes"]  # no words: no filter
    assert await titles(professions=["principal", "school-administrator"]) == ["Mail extractor", "Mentor notes"]
    assert await titles(professions=["teacher"], categories=["mentoring"]) == ["Mentor notes"]
    await tx(engine, catalog.add_favorite, "tina", b)
    await tx(engine, catalog.add_favorite, "tina", b)
    assert [x["id"] for x in await tx(engine, catalog.list_favorites, "tina")] == [b]
    assert await titles(favorites_only=True) == ["Mentor notes"]
    await tx(engine, catalog.remove_favorite, "tina", b)
    assert await tx(engine, catalog.list_favorites, "tina") == []
    async with engine.begin() as conn:
        for tid, minutes in ((a, 30), (c, 20), (a, 10)):
            ver = (await conn.execute(sa.select(t.tool_versions.c.id).where(t.tool_versions.c.tool_id == tid, t.tool_versions.c.state == "active"))).scalar_one()
            await conn.execute(sa.insert(t.runs).values(
                tool_id=tid, version_id=ver, user_name="tina", context="production", status="succeeded",
                requested_at=sa.text(f"now() - interval '{minutes} minutes'"), finished_at=sa.func.now(),
                deadline_at=sa.func.now()))
    assert [x["id"] for x in await tx(engine, catalog.recent, "tina")] == [a, c]


async def test_catalog_follows_edits_publishing_and_each_users_favorites(engine):
    """The catalog is read live, as the endpoint reads it (autocommit, ``db.reading``): an edited title is
    searchable at once (the stored search vector follows), a depublished tool is gone until it is republished,
    and the favorite flag and the favorites filter are each user's own."""
    tool, v1 = await ready_tool(engine, slug="seat-planner")
    await tx(engine, store.publish_version, tool["id"], v1["id"], "rita", None)
    await tx(engine, store.publish_tool, tool["id"], "rita")

    async def cards(user="tina", **kw):
        async with db.reading(engine) as conn:
            return (await catalog.search(conn, user, **kw))["tools"]

    assert [c["slug"] for c in await cards(q="maker")] == ["seat-planner"]
    await tx(engine, store.update_tool, tool["id"], "rita", {"title": "Seat planner"}, reviewer=True)
    assert await cards(q="maker") == []
    assert [c["title"] for c in await cards(q="seat plan")] == ["Seat planner"]
    await tx(engine, catalog.add_favorite, "tina", tool["id"])
    assert [c["favorite"] for c in await cards()] == [True]
    assert [c["favorite"] for c in await cards("bo")] == [False]
    assert await cards("bo", favorites_only=True) == []
    await tx(engine, store.depublish_tool, tool["id"], "rita")
    assert await cards() == [] and await cards(favorites_only=True) == []
    await tx(engine, store.publish_tool, tool["id"], "rita")
    assert [c["id"] for c in await cards(favorites_only=True)] == [tool["id"]]


async def test_catalog_cache_answers_as_postgres_does_and_follows_every_change(engine, fresh_db_url):
    """The cache (``catalog_cache``) gives the answer of the uncached search (the same JSON), repeats it from
    memory, and follows every change Postgres notifies: writes in their own transactions, with no local
    ``invalidate`` (as another replica or psql would write). While its LISTEN connection is gone it serves
    nothing from memory. Without the triggers a cached page would stay stale for ``max_age`` (300 s)."""
    from skriptoteket_ext.catalog_cache import CatalogCache
    from skriptoteket_ext.metrics import REGISTRY

    tool, v1 = await ready_tool(engine, slug="seat-planner")
    await tx(engine, store.publish_version, tool["id"], v1["id"], "rita", None)
    await tx(engine, store.publish_tool, tool["id"], "rita")
    cache = CatalogCache(fresh_db_url)
    cache.start()
    hits = lambda: REGISTRY.get_sample_value("skriptoteket_catalog_searches_total", {"result": "hit"}) or 0.0  # noqa: E731
    queries = [{"q": "maker"}, {}, {"professions": ["teacher"]}, {"q": "seat", "categories": ["other"]}]

    async def answers(user, **query):
        query = {"q": "", "professions": [], "categories": [], "favorites_only": False, "limit": 50, "offset": 0, **query}
        cached = await cache.search_json(engine, user, **query)
        async with db.reading(engine) as conn:
            return json.loads(cached), json.loads(await catalog.search_json(conn, user, **query))

    async def settled(user="tina", **query):
        """The cache agrees with Postgres, at once or once the change's notification has arrived."""
        for _ in range(100):
            cached, fresh = await answers(user, **query)
            if cached == fresh:
                return cached["tools"]
            await asyncio.sleep(0.05)
        raise AssertionError(f"the cache kept a stale page for {query}: {cached} instead of {fresh}")

    async def until(check, timeout=15.0):
        for _ in range(int(timeout / 0.05)):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out")

    try:
        await until(lambda: cache.listening)
        for query in queries:
            cached, fresh = await answers("tina", **query)
            assert cached == fresh, query
        before = hits()
        for query in queries:
            cached, fresh = await answers("tina", **query)
            assert cached == fresh, query
        assert hits() - before == len(queries)  # the second time, all from memory

        await tx(engine, store.update_tool, tool["id"], "rita", {"title": "Seat planner"}, reviewer=True)
        assert await settled(q="maker") == []
        assert [c["title"] for c in await settled()] == ["Seat planner"]

        await tx(engine, catalog.add_favorite, "tina", tool["id"])
        assert [c["favorite"] for c in await settled()] == [True]
        assert [c["favorite"] for c in await settled("bo")] == [False]

        await tx(engine, store.depublish_tool, tool["id"], "rita")
        assert await settled() == [] and await settled(professions=["teacher"]) == []

        # The listening connection is killed (as by a Postgres restart): nothing from memory until it is back.
        await tx(engine, store.publish_tool, tool["id"], "rita")
        async with engine.connect() as conn:
            await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'skriptoteket-listen'")
        await until(lambda: not cache.listening)
        before = hits()
        assert [c["id"] for c in await settled()] == [tool["id"]]
        assert hits() == before
        await until(lambda: cache.listening)
        await settled()
        before = hits()
        await settled()
        assert hits() == before + 1
    finally:
        await cache.stop()
