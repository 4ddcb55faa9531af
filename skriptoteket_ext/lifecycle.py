"""The tool lifecycle as a pure state machine: versions, publishing, slugs, locks and suggestions.

No tornado, no SQLAlchemy: functions take plain values (``ToolFacts``, ``VersionFacts``, ``LockFacts``) and
either return what to do or raise ``Refused`` with a stable error code (the key ``error.<code>`` in
``locale/tools.<lang>.json``). ``tools.py`` loads the facts inside a transaction, asks this module, and writes.

Versions are append-only and numbered per tool; their states are ``draft → in_review → active → archived``:

    save draft        head (the newest version) must be the version the edit started from; a draft parent is
                      superseded (archived); the new version is a draft
    submit            draft → in_review (the tool needs a real slug and ≥ 1 profession and ≥ 1 category)
    request changes   in_review → archived, and a new draft (a copy) becomes the head
    publish version   in_review → archived, the previous active → archived, a new active copy (was_active)
    rollback (admin)  the active → archived, a new active copy of an archived version that was once active
    publish tool      needs an active version (and slug, taxonomy); the first publish locks the slug forever
    depublish tool    a visibility switch; versions are untouched
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import ApiError

DRAFT, IN_REVIEW, ACTIVE, ARCHIVED = "draft", "in_review", "active", "archived"
STATES = (DRAFT, IN_REVIEW, ACTIVE, ARCHIVED)

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 128
PLACEHOLDER_PREFIX = "draft-"
TITLE_MAX = 200
SUMMARY_MAX = 1000
DESCRIPTION_MAX = 5000
MESSAGE_MAX = 5000
SOURCE_MAX = 1_000_000
INSTRUCTIONS_MAX = 100_000
ENTRYPOINT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_LOCK_SECONDS = 600

# Per action: the states a version may be in, and the state it goes to.
TRANSITIONS = {
    "submit": ({DRAFT}, IN_REVIEW),
    "request_changes": ({IN_REVIEW}, ARCHIVED),
    "publish": ({IN_REVIEW}, ARCHIVED),  # the reviewed version is archived; its copy becomes active
    "supersede": ({ACTIVE}, ARCHIVED),  # the previous active, on publish or rollback
}

# Refusal codes and their HTTP status (the message catalogs hold the words).
STATUS = {
    "invalid_transition": 409,
    "head_moved": 409,
    "slug_invalid": 422,
    "slug_locked": 409,
    "slug_required": 409,
    "taxonomy_required": 409,
    "no_active_version": 409,
    "not_once_active": 409,
    "active_changed": 409,
    "locked": 423,
    "already_decided": 409,
    "owner_not_removable": 409,
    "metadata_reviewers_only": 403,
    "field_required": 422,
    "too_long": 422,
    "invalid_field": 422,
}


class Refused(ApiError):
    """A transition or an edit the rules do not allow."""

    def __init__(self, code: str, details: dict | None = None, **params: object):
        super().__init__(STATUS.get(code, 409), code, details=details or dict(params), **params)


@dataclass(frozen=True)
class ToolFacts:
    slug: str
    slug_locked: bool = False
    is_published: bool = False
    professions: int = 0
    categories: int = 0
    active_version_id: int | None = None


@dataclass(frozen=True)
class VersionFacts:
    id: int
    state: str
    was_active: bool = False
    version_no: int = 0


# ---------------------------------------------------------------------------------------- fields, slugs


def is_placeholder_slug(slug: str) -> bool:
    return slug.startswith(PLACEHOLDER_PREFIX) and slug[len(PLACEHOLDER_PREFIX):].isdigit()


def placeholder_slug(tool_id: int) -> str:
    return f"{PLACEHOLDER_PREFIX}{tool_id}"


def check_slug(slug: object) -> str:
    if not isinstance(slug, str) or not (1 <= len(slug) <= SLUG_MAX) or not SLUG_RE.match(slug):
        raise Refused("slug_invalid", max=SLUG_MAX)
    if is_placeholder_slug(slug):  # draft-<n> is reserved for placeholders
        raise Refused("slug_invalid", max=SLUG_MAX)
    return slug


def check_text(field: str, value: object, max_length: int, *, required: bool = False) -> str:
    """A trimmed text field within its limit; ``required`` refuses blank values."""
    if value is None:
        if required:
            raise Refused("field_required", field=field)
        return ""
    if not isinstance(value, str):
        raise Refused("invalid_field", field=field)
    value = value.strip()
    if required and not value:
        raise Refused("field_required", field=field)
    if len(value) > max_length:
        raise Refused("too_long", field=field, max=max_length)
    return value


def check_slug_list(field: str, value: object) -> list[str]:
    """A list of taxonomy slugs (existence is checked against the database by the caller)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 50:
        raise Refused("invalid_field", field=field)
    return sorted(set(value))


# ------------------------------------------------------------------------------------------- metadata


def check_metadata_edit(tool: ToolFacts, fields: set[str], *, reviewer: bool) -> None:
    """Maintainers edit title, summary, taxonomy and the slug of unpublished tools (so an author can give a new
    tool its address and submit it); reviewers edit anything any time, except a slug that is locked (the tool
    was published once: URLs stay valid forever)."""
    if "slug" in fields and tool.slug_locked:
        raise Refused("slug_locked", slug=tool.slug)
    if not reviewer and tool.is_published and fields:
        raise Refused("metadata_reviewers_only")


def check_slug_change(tool: ToolFacts, new_slug: str) -> str:
    if tool.slug_locked and new_slug != tool.slug:
        raise Refused("slug_locked", slug=tool.slug)
    return check_slug(new_slug)


def _ready(tool: ToolFacts) -> None:
    if is_placeholder_slug(tool.slug):
        raise Refused("slug_required")
    if tool.professions < 1 or tool.categories < 1:
        raise Refused("taxonomy_required")


# ------------------------------------------------------------------------------------------- versions


def transition(action: str, state: str) -> str:
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        raise Refused("invalid_transition", action=action, state=state)
    return target


def check_save(head: VersionFacts | None, expected_parent: int | None) -> bool:
    """A save must name the head it was edited from. Returns True when the parent (a draft) is superseded."""
    head_id = head.id if head else None
    if expected_parent != head_id:
        raise Refused("head_moved", details={"head": head_id, "expected_parent": expected_parent}, head=head_id)
    return head is not None and head.state == DRAFT


def check_submit(tool: ToolFacts, version: VersionFacts) -> str:
    target = transition("submit", version.state)
    _ready(tool)
    return target


def check_request_changes(version: VersionFacts) -> str:
    return transition("request_changes", version.state)


def check_publish_version(
    tool: ToolFacts, version: VersionFacts, expected_active: int | None, *, check_expected: bool = True
) -> str:
    """The reviewer reviewed ``version`` against ``expected_active``; if another version was published
    meanwhile, the review is stale and the publish is refused."""
    if check_expected and expected_active != tool.active_version_id:
        raise Refused("active_changed", details={"active_version_id": tool.active_version_id})
    target = transition("publish", version.state)
    _ready(tool)
    return target


def check_rollback(tool: ToolFacts, target: VersionFacts) -> None:
    """Only an archived version that was once active (a published copy) may come back."""
    if target.state != ARCHIVED or not target.was_active:
        raise Refused("not_once_active", version_no=target.version_no)


def check_publish_tool(tool: ToolFacts) -> None:
    if tool.active_version_id is None:
        raise Refused("no_active_version")
    _ready(tool)


def check_depublish_tool(tool: ToolFacts) -> None:
    """Depublishing is idempotent; nothing to refuse."""


def one_active(states: list[str]) -> bool:
    """The invariant the database also enforces: at most one active version per tool."""
    return states.count(ACTIVE) <= 1


# ---------------------------------------------------------------------------------------------- locks


@dataclass(frozen=True)
class LockFacts:
    holder: str
    expires_at: datetime


def lock_is_live(lock: LockFacts | None, now: datetime) -> bool:
    return lock is not None and lock.expires_at > now


def check_lock(lock: LockFacts | None, user: str, now: datetime, *, force: bool = False) -> str | None:
    """May ``user`` take (or renew) the draft lock? Returns the previous live holder when forced over
    someone else, None otherwise."""
    if not lock_is_live(lock, now) or lock.holder == user:
        return None
    if not force:
        raise Refused("locked", holder=lock.holder, details={"holder": lock.holder, "expires_at": lock.expires_at.isoformat()})
    return lock.holder


def check_may_edit(lock: LockFacts | None, user: str, now: datetime) -> None:
    """Saving needs no lock when nobody holds one; a live lock of someone else makes the draft read-only."""
    check_lock(lock, user, now)


def lock_expiry(now: datetime, seconds: int = DEFAULT_LOCK_SECONDS) -> datetime:
    return now + timedelta(seconds=seconds)


# -------------------------------------------------------------------------------- suggestions, maintainers


def check_decision(status: str, decision: str, rationale: str | None) -> str:
    if status != "pending":
        raise Refused("already_decided", decision=status)
    if decision == "denied" and not (rationale or "").strip():
        raise Refused("field_required", field="rationale")
    return decision


def check_remove_maintainer(owner: str, user: str) -> None:
    if user == owner:
        raise Refused("owner_not_removable", user=user)
