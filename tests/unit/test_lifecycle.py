"""The tool lifecycle state machine (pure): every transition, and every refused one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from skriptoteket_ext import lifecycle as lc
from skriptoteket_ext.lifecycle import LockFacts, Refused, ToolFacts, VersionFacts

READY = ToolFacts(slug="group-maker", professions=1, categories=1)
PLACEHOLDER = ToolFacts(slug="draft-7", professions=1, categories=1)
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def v(state, id=1, was_active=False, no=1):
    return VersionFacts(id=id, state=state, was_active=was_active, version_no=no)


def refused(code, fn, *args, **kwargs):
    with pytest.raises(Refused) as err:
        fn(*args, **kwargs)
    assert err.value.code == code, err.value.code
    return err.value


# ---- transitions ------------------------------------------------------------------------------------------


def test_submit_draft_goes_in_review():
    assert lc.check_submit(READY, v("draft")) == "in_review"


@pytest.mark.parametrize("state", ["in_review", "active", "archived"])
def test_only_drafts_can_be_submitted(state):
    refused("invalid_transition", lc.check_submit, READY, v(state))


def test_submit_needs_a_real_slug_and_taxonomy():
    refused("slug_required", lc.check_submit, PLACEHOLDER, v("draft"))
    refused("taxonomy_required", lc.check_submit, ToolFacts(slug="x", professions=0, categories=1), v("draft"))
    refused("taxonomy_required", lc.check_submit, ToolFacts(slug="x", professions=1, categories=0), v("draft"))


def test_request_changes_archives_the_reviewed_version():
    assert lc.check_request_changes(v("in_review")) == "archived"
    for state in ("draft", "active", "archived"):
        refused("invalid_transition", lc.check_request_changes, v(state))


def test_publish_a_reviewed_version():
    assert lc.check_publish_version(READY, v("in_review"), None) == "archived"
    tool = ToolFacts(slug="x", professions=1, categories=1, active_version_id=5)
    assert lc.check_publish_version(tool, v("in_review"), 5) == "archived"


@pytest.mark.parametrize("state", ["draft", "active", "archived"])
def test_publishing_anything_but_a_reviewed_version_is_refused(state):
    err = refused("invalid_transition", lc.check_publish_version, READY, v(state), None)
    assert err.status == 409 and err.params == {"action": "publish", "state": state}


def test_publish_refused_when_the_active_version_changed_meanwhile():
    tool = ToolFacts(slug="x", professions=1, categories=1, active_version_id=9)
    refused("active_changed", lc.check_publish_version, tool, v("in_review"), 5)
    refused("active_changed", lc.check_publish_version, tool, v("in_review"), None)


def test_publish_version_needs_slug_and_taxonomy():
    refused("slug_required", lc.check_publish_version, PLACEHOLDER, v("in_review"), None)


def test_the_previous_active_is_superseded_and_nothing_else():
    assert lc.transition("supersede", "active") == "archived"
    for state in ("draft", "in_review", "archived"):
        refused("invalid_transition", lc.transition, "supersede", state)


def test_one_active_version():
    assert lc.one_active(["archived", "active", "draft"])
    assert not lc.one_active(["active", "active"])


def test_a_second_active_version_cannot_come_from_publishing_an_active_copy():
    """Publishing is from in_review only, so an active copy can never be published again into a second one."""
    refused("invalid_transition", lc.check_publish_version, READY, v("active", was_active=True), None)


def test_rollback_only_to_an_archived_once_active_version():
    lc.check_rollback(READY, v("archived", was_active=True))
    refused("not_once_active", lc.check_rollback, READY, v("archived", was_active=False, no=3))  # a review snapshot
    refused("not_once_active", lc.check_rollback, READY, v("active", was_active=True))  # already the active one
    refused("not_once_active", lc.check_rollback, READY, v("draft"))
    refused("not_once_active", lc.check_rollback, READY, v("in_review"))


def test_publish_tool_needs_an_active_version():
    refused("no_active_version", lc.check_publish_tool, READY)
    lc.check_publish_tool(ToolFacts(slug="x", professions=1, categories=1, active_version_id=3))
    refused("slug_required", lc.check_publish_tool, ToolFacts(slug="draft-3", professions=1, categories=1, active_version_id=3))
    lc.check_depublish_tool(READY)


# ---- saves --------------------------------------------------------------------------------------------------


def test_first_save_names_no_parent():
    assert lc.check_save(None, None) is False
    refused("head_moved", lc.check_save, None, 4)


def test_save_from_the_head_supersedes_a_draft_head():
    assert lc.check_save(v("draft", id=4), 4) is True
    assert lc.check_save(v("active", id=4, was_active=True), 4) is False  # an active head stays active
    assert lc.check_save(v("in_review", id=4), 4) is False


def test_save_from_a_stale_parent_is_refused():
    err = refused("head_moved", lc.check_save, v("draft", id=5), 4)
    assert err.status == 409 and err.details == {"head": 5, "expected_parent": 4}
    refused("head_moved", lc.check_save, v("draft", id=5), None)


# ---- slugs and metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["a", "group-maker", "a1-b2-c3", "x" * 128])
def test_good_slugs(slug):
    assert lc.check_slug(slug) == slug


@pytest.mark.parametrize("slug", ["", "A", "a_b", "a--b", "-a", "a-", "a b", "x" * 129, "draft-12", 12, None, "å"])
def test_bad_slugs(slug):
    refused("slug_invalid", lc.check_slug, slug)


def test_placeholder_slugs():
    assert lc.placeholder_slug(7) == "draft-7" and lc.is_placeholder_slug("draft-7")
    assert not lc.is_placeholder_slug("draft-notes")


def test_a_published_slug_never_changes():
    locked = ToolFacts(slug="group-maker", slug_locked=True, is_published=False, professions=1, categories=1)
    refused("slug_locked", lc.check_slug_change, locked, "new-name")
    refused("slug_locked", lc.check_metadata_edit, locked, {"slug"}, reviewer=True)
    assert lc.check_slug_change(READY, "new-name") == "new-name"
    lc.check_metadata_edit(READY, {"slug", "title"}, reviewer=True)


def test_maintainers_edit_metadata_and_slug_of_unpublished_tools_only():
    lc.check_metadata_edit(READY, {"title", "summary", "professions", "categories", "slug"}, reviewer=False)
    locked = ToolFacts(slug="x", slug_locked=True, is_published=False, professions=1, categories=1)
    refused("slug_locked", lc.check_metadata_edit, locked, {"slug"}, reviewer=False)
    published = ToolFacts(slug="x", slug_locked=True, is_published=True, professions=1, categories=1)
    refused("metadata_reviewers_only", lc.check_metadata_edit, published, {"title"}, reviewer=False)
    lc.check_metadata_edit(published, {"title", "categories"}, reviewer=True)


def test_text_limits():
    assert lc.check_text("title", "  Hi  ", lc.TITLE_MAX, required=True) == "Hi"
    assert lc.check_text("title", "x" * 200, lc.TITLE_MAX, required=True)
    err = refused("too_long", lc.check_text, "title", "x" * 201, lc.TITLE_MAX, required=True)
    assert err.status == 422 and err.params == {"field": "title", "max": 200}
    refused("too_long", lc.check_text, "summary", "x" * 1001, lc.SUMMARY_MAX)
    refused("field_required", lc.check_text, "title", " ", lc.TITLE_MAX, required=True)
    refused("invalid_field", lc.check_text, "title", 5, lc.TITLE_MAX)
    assert lc.check_slug_list("professions", ["b", "a", "a"]) == ["a", "b"]
    refused("invalid_field", lc.check_slug_list, "professions", "teacher")


# ---- locks --------------------------------------------------------------------------------------------------


def test_locks():
    live = LockFacts(holder="ada", expires_at=NOW + timedelta(minutes=5))
    expired = LockFacts(holder="ada", expires_at=NOW - timedelta(seconds=1))
    assert lc.check_lock(None, "bo", NOW) is None
    assert lc.check_lock(live, "ada", NOW) is None  # renew
    assert lc.check_lock(expired, "bo", NOW) is None  # an expired lock is free
    err = refused("locked", lc.check_lock, live, "bo", NOW)
    assert err.status == 423 and err.params == {"holder": "ada"}
    assert lc.check_lock(live, "rita", NOW, force=True) == "ada"  # take-over names the previous holder
    refused("locked", lc.check_may_edit, live, "bo", NOW)
    lc.check_may_edit(None, "bo", NOW)
    assert lc.lock_expiry(NOW) == NOW + timedelta(minutes=10)


# ---- suggestions, maintainers ---------------------------------------------------------------------------------


def test_suggestion_decisions():
    assert lc.check_decision("pending", "accepted", None) == "accepted"
    assert lc.check_decision("pending", "denied", "exists already") == "denied"
    refused("field_required", lc.check_decision, "pending", "denied", "  ")
    for status in ("accepted", "denied"):
        err = refused("already_decided", lc.check_decision, status, "accepted", None)
        assert err.status == 409


def test_the_owner_cannot_be_removed():
    refused("owner_not_removable", lc.check_remove_maintainer, "ada", "ada")
    lc.check_remove_maintainer("ada", "bo")


def test_every_refusal_code_has_english_and_swedish_messages():
    import json
    from pathlib import Path

    import skriptoteket_ext

    locale = Path(skriptoteket_ext.__file__).parent / "locale"
    en = json.loads((locale / "tools.en.json").read_text())
    sv = json.loads((locale / "tools.sv.json").read_text())
    assert set(en) == set(sv)
    for code in lc.STATUS:
        assert f"error.{code}" in en, code
