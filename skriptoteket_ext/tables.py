"""The service's own Postgres schema (``skriptoteket``), as SQLAlchemy Core tables.

This module is the single description of the schema that code queries against; the alembic migrations in
``migrations/versions`` create exactly this (a test compares the two, so they cannot drift). Nothing here
touches JupyterHub's tables: users are referred to by their hub user name. docs/schema.md explains each table
and the decisions behind it.

Conventions:
- every timestamp is ``timestamptz``; ``*_at`` columns that record "now" have ``server_default now()``;
- enumerations are ``text`` columns with CHECK constraints (easier to migrate than PG enums);
- columns naming a user in a *relationship* (owner, maintainer, lock holder, the user of a run, session,
  setting, favorite...) reference ``users.name`` (ON UPDATE CASCADE, so a hub rename follows); columns
  recording *who did something* (``*_by``, ``actor_name``) are plain text, an audit record that must survive
  the user's rename or deletion unchanged;
- every constraint and index is named by ``metadata.naming_convention``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID

SCHEMA = "skriptoteket"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

# Enumerations (CHECK constraints). Kept here so domain code can import the same tuples.
LANGUAGES = ("en", "sv")
VERSION_STATES = ("draft", "in_review", "active", "archived")
RUN_CONTEXTS = ("production", "sandbox")
RUN_STATUSES = ("running", "succeeded", "failed", "timed_out", "cancelled")
SUGGESTION_STATUSES = ("pending", "accepted", "denied")
SUGGESTION_DECISIONS = ("accepted", "denied")
MAINTAINER_ACTIONS = ("add", "remove")
AI_CAPABILITIES = ("generate", "edit", "explain", "complete")

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SLUG_MAX_LENGTH = 128
ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ACTION_ID_MAX_LENGTH = 64

# The taxonomy the initial migration seeds (slug, label_en, label_sv, sort_order).
SEED_PROFESSIONS = (
    ("teacher", "Teacher", "Lärare", 10),
    ("special-needs-educator", "Special-needs educator", "Specialpedagog", 20),
    ("school-administrator", "School administrator", "Skoladministratör", 30),
    ("principal", "Principal", "Rektor", 40),
    ("shared", "Shared", "Gemensamt", 50),
)
SEED_CATEGORIES = (
    ("lesson-planning", "Lesson planning", "Lektionsplanering", 10),
    ("mentoring", "Mentoring", "Mentorskap", 20),
    ("administration", "Administration", "Administration", 30),
    ("other", "Other", "Övrigt", 40),
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now() -> sa.TextClause:
    return sa.text("now()")


def _json(default: str) -> sa.TextClause:
    return sa.text(f"'{default}'::jsonb")


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now())


def _user_fk(ondelete: str = "CASCADE") -> sa.ForeignKey:
    return sa.ForeignKey(f"{SCHEMA}.users.name", onupdate="CASCADE", ondelete=ondelete)


def _tool_fk(ondelete: str = "CASCADE") -> sa.ForeignKey:
    return sa.ForeignKey(f"{SCHEMA}.tools.id", ondelete=ondelete)


TS = sa.DateTime(timezone=True)

# --------------------------------------------------------------------------------------------------- users

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # the JupyterHub user name
    sa.Column("display_name", sa.Text, nullable=True),
    sa.Column("language", sa.Text, nullable=True),  # null = the deployment's default
    sa.Column("first_seen", TS, nullable=False, server_default=_now()),
    sa.Column("last_seen", TS, nullable=False, server_default=_now()),
    sa.CheckConstraint("char_length(name) BETWEEN 1 AND 255", name="name_length"),
    sa.CheckConstraint(f"language IS NULL OR {_in('language', LANGUAGES)}", name="language"),
)

# ------------------------------------------------------------------------------------------------ taxonomy


def _taxonomy_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("slug", sa.Text, primary_key=True),
        sa.Column("label_en", sa.Text, nullable=False),
        sa.Column("label_sv", sa.Text, nullable=False),
        sa.Column("sort_order", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_format"),
    )


professions = _taxonomy_table("professions")
categories = _taxonomy_table("categories")

# --------------------------------------------------------------------------------------------------- tools

tools = sa.Table(
    "tools",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("slug", sa.Text, nullable=False),  # placeholder draft-<id> until set; fixed once slug_locked
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("owner_name", sa.Text, _user_fk(ondelete="RESTRICT"), nullable=False),
    sa.Column("is_published", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("published_at", TS, nullable=True),  # last time the tool was published
    sa.Column("published_by", sa.Text, nullable=True),
    sa.Column("slug_locked", sa.Boolean, nullable=False, server_default=sa.false()),
    _created_at(),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("updated_at", TS, nullable=False, server_default=_now()),
    sa.Column("updated_by", sa.Text, nullable=True),
    # Catalog text search on title and summary, "simple" configuration (the catalog is bilingual). Stored and
    # kept by Postgres on every write (migration 0002): a query that scans in title order checks it cheaply.
    sa.Column("search_vector", TSVECTOR, sa.Computed("to_tsvector('simple'::regconfig, (title || ' ') || summary)", persisted=True)),
    sa.UniqueConstraint("slug"),
    sa.CheckConstraint(
        f"char_length(slug) BETWEEN 1 AND {SLUG_MAX_LENGTH} AND slug ~ '{SLUG_PATTERN}'", name="slug_format"
    ),
    sa.CheckConstraint("btrim(title) <> ''", name="title_not_blank"),
    sa.CheckConstraint(
        "NOT is_published OR (slug_locked AND published_at IS NOT NULL)", name="published_locks_slug"
    ),
)
sa.Index("ix_tools_lower_title", sa.func.lower(tools.c.title))
# Queries match against this:  tool_search_document.op("@@")(sa.func.to_tsquery(...)).
tool_search_document = tools.c.search_vector
sa.Index("ix_tools_search_vector", tools.c.search_vector, postgresql_using="gin")
sa.Index("ix_tools_owner_name", tools.c.owner_name)
sa.Index("ix_tools_published_title", tools.c.title, postgresql_where=tools.c.is_published)

tool_professions = sa.Table(
    "tool_professions",
    metadata,
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), primary_key=True),
    sa.Column(
        "profession_slug",
        sa.Text,
        sa.ForeignKey(f"{SCHEMA}.professions.slug", onupdate="CASCADE", ondelete="RESTRICT"),
        primary_key=True,
    ),
)
sa.Index("ix_tool_professions_profession_slug", tool_professions.c.profession_slug)

tool_categories = sa.Table(
    "tool_categories",
    metadata,
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), primary_key=True),
    sa.Column(
        "category_slug",
        sa.Text,
        sa.ForeignKey(f"{SCHEMA}.categories.slug", onupdate="CASCADE", ondelete="RESTRICT"),
        primary_key=True,
    ),
)
sa.Index("ix_tool_categories_category_slug", tool_categories.c.category_slug)

# ------------------------------------------------------------------------------------------------ versions

tool_versions = sa.Table(
    "tool_versions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), nullable=False),
    sa.Column("version_no", sa.Integer, nullable=False),  # 1, 2, 3... per tool
    sa.Column("state", sa.Text, nullable=False, server_default="draft"),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("entrypoint", sa.Text, nullable=False, server_default="run_tool"),
    sa.Column("input_schema", JSONB, nullable=False, server_default=_json("[]")),
    sa.Column("settings_schema", JSONB, nullable=True),
    sa.Column("usage_instructions", sa.Text, nullable=True),
    # The version this one was edited from (draft head chain; request-changes draft -> reviewed version).
    sa.Column("parent_version_id", sa.BigInteger, nullable=True),
    # The version whose content was copied (copy-on-activate: the reviewed version; rollback: the old active).
    sa.Column("derived_from_version_id", sa.BigInteger, nullable=True),
    sa.Column("was_active", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("change_message", sa.Text, nullable=True),  # reviewer's request-changes message
    _created_at(),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("submitted_at", TS, nullable=True),
    sa.Column("submitted_by", sa.Text, nullable=True),
    sa.Column("reviewed_at", TS, nullable=True),
    sa.Column("reviewed_by", sa.Text, nullable=True),
    sa.Column("state_changed_at", TS, nullable=False, server_default=_now()),
    sa.Column("state_changed_by", sa.Text, nullable=True),
    sa.UniqueConstraint("tool_id", "version_no"),
    # Target of the composite FKs below: a referenced version must belong to the same tool.
    sa.UniqueConstraint("tool_id", "id"),
    sa.ForeignKeyConstraint(
        ["tool_id", "parent_version_id"], [f"{SCHEMA}.tool_versions.tool_id", f"{SCHEMA}.tool_versions.id"], ondelete="CASCADE"
    ),
    sa.ForeignKeyConstraint(
        ["tool_id", "derived_from_version_id"],
        [f"{SCHEMA}.tool_versions.tool_id", f"{SCHEMA}.tool_versions.id"],
        ondelete="CASCADE",
    ),
    sa.CheckConstraint("version_no > 0", name="version_no_positive"),
    sa.CheckConstraint(_in("state", VERSION_STATES), name="state"),
    sa.CheckConstraint("state <> 'active' OR was_active", name="active_was_active"),
    sa.CheckConstraint(f"entrypoint ~ '{ENTRYPOINT_PATTERN}'", name="entrypoint_identifier"),
    sa.CheckConstraint("jsonb_typeof(input_schema) = 'array'", name="input_schema_array"),
    sa.CheckConstraint(
        "settings_schema IS NULL OR jsonb_typeof(settings_schema) = 'array'", name="settings_schema_array"
    ),
)
# At most one active version per tool, enforced by the database.
sa.Index(
    "uq_tool_versions_one_active",
    tool_versions.c.tool_id,
    unique=True,
    postgresql_where=tool_versions.c.state == "active",
)
# No fork of the draft chain: two drafts saved from the same parent (a lost race past "the head moved") fail.
sa.Index(
    "uq_tool_versions_draft_parent",
    tool_versions.c.parent_version_id,
    unique=True,
    postgresql_where=tool_versions.c.state == "draft",
)
# The review queue.
sa.Index(
    "ix_tool_versions_in_review",
    tool_versions.c.submitted_at,
    postgresql_where=tool_versions.c.state == "in_review",
)

# ------------------------------------------------------------------------------------ maintainers, audit

tool_maintainers = sa.Table(
    "tool_maintainers",
    metadata,
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), primary_key=True),
    sa.Column("user_name", sa.Text, _user_fk(), primary_key=True),
    sa.Column("added_by", sa.Text, nullable=False),
    sa.Column("added_at", TS, nullable=False, server_default=_now()),
)
sa.Index("ix_tool_maintainers_user_name", tool_maintainers.c.user_name)

maintainer_audit = sa.Table(
    "maintainer_audit",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), nullable=False),
    sa.Column("user_name", sa.Text, nullable=False),  # audit: no FK
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor_name", sa.Text, nullable=False),
    sa.Column("at", TS, nullable=False, server_default=_now()),
    sa.CheckConstraint(_in("action", MAINTAINER_ACTIONS), name="action"),
    sa.CheckConstraint("btrim(reason) <> ''", name="reason_not_blank"),
)
sa.Index("ix_maintainer_audit_tool_id_at", maintainer_audit.c.tool_id, maintainer_audit.c.at)

# Who did what to a tool, beyond the per-version state columns: publish/depublish, slug and metadata edits,
# taxonomy changes, rollback, forced lock take-over... `action` is a lower_snake_case verb chosen by the
# service; `details` holds the before/after values worth keeping.
tool_events = sa.Table(
    "tool_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), nullable=False),
    sa.Column("version_id", sa.BigInteger, nullable=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("actor_name", sa.Text, nullable=False),
    sa.Column("at", TS, nullable=False, server_default=_now()),
    sa.Column("details", JSONB, nullable=False, server_default=_json("{}")),
    sa.ForeignKeyConstraint(
        ["tool_id", "version_id"], [f"{SCHEMA}.tool_versions.tool_id", f"{SCHEMA}.tool_versions.id"], ondelete="CASCADE"
    ),
    sa.CheckConstraint("action ~ '^[a-z][a-z_]*$'", name="action_format"),
    sa.CheckConstraint("jsonb_typeof(details) = 'object'", name="details_object"),
)
sa.Index("ix_tool_events_tool_id_at", tool_events.c.tool_id, tool_events.c.at)

draft_locks = sa.Table(
    "draft_locks",
    metadata,
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), primary_key=True),
    sa.Column("holder_name", sa.Text, _user_fk(), nullable=False),
    sa.Column("acquired_at", TS, nullable=False, server_default=_now()),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("forced_by", sa.Text, nullable=True),  # reviewer/admin who took the lock over, if any
    sa.CheckConstraint("expires_at > acquired_at", name="expires_after_acquired"),
)
sa.Index("ix_draft_locks_holder_name", draft_locks.c.holder_name)

# ------------------------------------------------------------------------------------------- suggestions

suggestions = sa.Table(
    "suggestions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("suggested_by", sa.Text, _user_fk(), nullable=False),
    _created_at(),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("decided_by", sa.Text, nullable=True),
    sa.Column("decided_at", TS, nullable=True),
    sa.Column("rationale", sa.Text, nullable=True),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(ondelete="SET NULL"), nullable=True),  # accepted -> draft tool
    sa.CheckConstraint("btrim(title) <> ''", name="title_not_blank"),
    sa.CheckConstraint(_in("status", SUGGESTION_STATUSES), name="status"),
    sa.CheckConstraint("(status = 'pending') = (decided_at IS NULL)", name="decided_iff_not_pending"),
    sa.CheckConstraint(
        "status <> 'denied' OR btrim(coalesce(rationale, '')) <> ''", name="denied_has_rationale"
    ),
)
sa.Index("ix_suggestions_status_created_at", suggestions.c.status, suggestions.c.created_at)
sa.Index("ix_suggestions_suggested_by", suggestions.c.suggested_by)
sa.Index("ix_suggestions_tool_id", suggestions.c.tool_id)

suggestion_professions = sa.Table(
    "suggestion_professions",
    metadata,
    sa.Column(
        "suggestion_id",
        sa.BigInteger,
        sa.ForeignKey(f"{SCHEMA}.suggestions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "profession_slug",
        sa.Text,
        sa.ForeignKey(f"{SCHEMA}.professions.slug", onupdate="CASCADE", ondelete="RESTRICT"),
        primary_key=True,
    ),
)

suggestion_categories = sa.Table(
    "suggestion_categories",
    metadata,
    sa.Column(
        "suggestion_id",
        sa.BigInteger,
        sa.ForeignKey(f"{SCHEMA}.suggestions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "category_slug",
        sa.Text,
        sa.ForeignKey(f"{SCHEMA}.categories.slug", onupdate="CASCADE", ondelete="RESTRICT"),
        primary_key=True,
    ),
)

# Append-only history of decisions (a decision may be revisited; `suggestions` holds the current one).
suggestion_decisions = sa.Table(
    "suggestion_decisions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "suggestion_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.suggestions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("rationale", sa.Text, nullable=True),
    sa.Column("decided_by", sa.Text, nullable=False),
    sa.Column("decided_at", TS, nullable=False, server_default=_now()),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(ondelete="SET NULL"), nullable=True),
    sa.CheckConstraint(_in("decision", SUGGESTION_DECISIONS), name="decision"),
    sa.CheckConstraint(
        "decision <> 'denied' OR btrim(coalesce(rationale, '')) <> ''", name="denied_has_rationale"
    ),
)
sa.Index("ix_suggestion_decisions_suggestion_id", suggestion_decisions.c.suggestion_id)
sa.Index("ix_suggestion_decisions_tool_id", suggestion_decisions.c.tool_id)

# ---------------------------------------------------------------------------------------- sandbox input

# The unsaved notebook content a sandbox run executes (expires after 24 h by default; runs keep their rows).
sandbox_snapshots = sa.Table(
    "sandbox_snapshots",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), nullable=False),
    sa.Column("user_name", sa.Text, _user_fk(), nullable=False),
    sa.Column("base_version_id", sa.BigInteger, nullable=True),  # the version the notebook was pulled from
    _created_at(),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("entrypoint", sa.Text, nullable=False, server_default="run_tool"),
    sa.Column("input_schema", JSONB, nullable=False, server_default=_json("[]")),
    sa.Column("settings_schema", JSONB, nullable=True),
    sa.Column("usage_instructions", sa.Text, nullable=True),
    sa.ForeignKeyConstraint(
        ["tool_id", "base_version_id"], [f"{SCHEMA}.tool_versions.tool_id", f"{SCHEMA}.tool_versions.id"], ondelete="CASCADE"
    ),
    sa.CheckConstraint(f"entrypoint ~ '{ENTRYPOINT_PATTERN}'", name="entrypoint_identifier"),
    sa.CheckConstraint("jsonb_typeof(input_schema) = 'array'", name="input_schema_array"),
    sa.CheckConstraint(
        "settings_schema IS NULL OR jsonb_typeof(settings_schema) = 'array'", name="settings_schema_array"
    ),
)
sa.Index("ix_sandbox_snapshots_expires_at", sandbox_snapshots.c.expires_at)
sa.Index("ix_sandbox_snapshots_tool_id_user_name", sandbox_snapshots.c.tool_id, sandbox_snapshots.c.user_name)
sa.Index("ix_sandbox_snapshots_user_name", sandbox_snapshots.c.user_name)

# ----------------------------------------------------------------------------------------------- sessions

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), nullable=False),
    sa.Column("user_name", sa.Text, _user_fk(), nullable=False),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("state", JSONB, nullable=False, server_default=_json("{}")),
    sa.Column("state_rev", sa.Integer, nullable=False, server_default=sa.text("0")),
    # The next_actions the last run offered: a follow-up must name one of them and match its fields.
    sa.Column("offered_actions", JSONB, nullable=False, server_default=_json("[]")),
    sa.Column(
        "last_run_id",
        UUID(as_uuid=True),
        sa.ForeignKey(f"{SCHEMA}.runs.id", ondelete="SET NULL", use_alter=True),
        nullable=True,
    ),
    _created_at(),
    sa.Column("updated_at", TS, nullable=False, server_default=_now()),
    sa.UniqueConstraint("tool_id", "user_name", "context"),
    sa.CheckConstraint(_in("context", RUN_CONTEXTS), name="context"),
    sa.CheckConstraint("state_rev >= 0", name="state_rev_non_negative"),
    sa.CheckConstraint("jsonb_typeof(state) = 'object'", name="state_object"),
    sa.CheckConstraint("jsonb_typeof(offered_actions) = 'array'", name="offered_actions_array"),
)
sa.Index("ix_sessions_user_name", sessions.c.user_name)
sa.Index("ix_sessions_last_run_id", sessions.c.last_run_id)

session_files = sa.Table(
    "session_files",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "session_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.sessions.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("position", sa.Integer, nullable=False),  # upload order, 0-based
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("blob_key", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=True),
    sa.Column("uploaded_at", TS, nullable=False, server_default=_now()),
    sa.Column("last_used_at", TS, nullable=False, server_default=_now()),
    sa.UniqueConstraint("session_id", "position"),
    sa.UniqueConstraint("session_id", "name"),
    sa.CheckConstraint("position >= 0", name="position_non_negative"),
    sa.CheckConstraint("size >= 0", name="size_non_negative"),
    sa.CheckConstraint("name <> '' AND position('/' in name) = 0", name="name_plain"),
)
sa.Index("ix_session_files_last_used_at", session_files.c.last_used_at)

# ---------------------------------------------------------------------------------------------------- runs

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), nullable=False),
    sa.Column("version_id", sa.BigInteger, nullable=True),  # null only for sandbox runs of a snapshot
    sa.Column(
        "snapshot_id",
        UUID(as_uuid=True),
        sa.ForeignKey(f"{SCHEMA}.sandbox_snapshots.id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("user_name", sa.Text, _user_fk(), nullable=False),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="running"),
    sa.Column("requested_at", TS, nullable=False, server_default=_now()),
    sa.Column("started_at", TS, nullable=True),
    sa.Column("finished_at", TS, nullable=True),
    sa.Column("deadline_at", TS, nullable=False),  # requested/started + time limit + grace
    sa.Column("input_values", JSONB, nullable=False, server_default=_json("{}")),
    sa.Column("input_manifest", JSONB, nullable=False, server_default=_json('{"files": []}')),
    sa.Column("stdout", sa.Text, nullable=True),
    sa.Column("stderr", sa.Text, nullable=True),
    sa.Column("error_summary", sa.Text, nullable=True),
    sa.Column("result_payload", JSONB, nullable=True),  # the normalized payload, replayed from history
    sa.Column("action_id", sa.Text, nullable=True),  # null on a first run
    sa.Column(
        "session_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.sessions.id", ondelete="SET NULL"), nullable=True
    ),
    sa.ForeignKeyConstraint(
        ["tool_id", "version_id"], [f"{SCHEMA}.tool_versions.tool_id", f"{SCHEMA}.tool_versions.id"], ondelete="CASCADE"
    ),
    sa.CheckConstraint(_in("context", RUN_CONTEXTS), name="context"),
    sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    sa.CheckConstraint("(status = 'running') = (finished_at IS NULL)", name="finished_iff_not_running"),
    sa.CheckConstraint("context = 'sandbox' OR version_id IS NOT NULL", name="production_has_version"),
    sa.CheckConstraint(
        f"action_id IS NULL OR char_length(action_id) BETWEEN 1 AND {ACTION_ID_MAX_LENGTH}", name="action_id_length"
    ),
    sa.CheckConstraint("jsonb_typeof(input_values) = 'object'", name="input_values_object"),
    sa.CheckConstraint("jsonb_typeof(input_manifest) = 'object'", name="input_manifest_object"),
)
sa.Index("ix_runs_user_name_requested_at", runs.c.user_name, runs.c.requested_at.desc())
sa.Index("ix_runs_tool_id_requested_at", runs.c.tool_id, runs.c.requested_at.desc())
sa.Index("ix_runs_deadline_at_running", runs.c.deadline_at, postgresql_where=runs.c.status == "running")
sa.Index("ix_runs_session_id", runs.c.session_id)
sa.Index("ix_runs_snapshot_id", runs.c.snapshot_id)

# Files a run wrote under output/ (contract §7). The blob itself lives in the blob store under blob_key; the
# row stays after expiry (expired_at set, blob deleted) so history says "expired" rather than a broken link.
artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("artifact_id", sa.Text, primary_key=True),  # stable id derived from the path
    sa.Column("path", sa.Text, nullable=False),  # relative to output/
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("blob_key", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=True),
    _created_at(),
    sa.Column("expires_at", TS, nullable=True),  # null = kept until further notice
    sa.Column("expired_at", TS, nullable=True),  # set when the blob was deleted
    sa.UniqueConstraint("run_id", "path"),
    sa.CheckConstraint("artifact_id <> '' AND position('/' in artifact_id) = 0", name="artifact_id_plain"),
    sa.CheckConstraint("bytes >= 0", name="bytes_non_negative"),
    sa.CheckConstraint("path <> '' AND path !~ '^/' AND path !~ '(^|/)\\.\\.(/|$)'", name="path_relative"),
)
sa.Index("ix_artifacts_expires_at", artifacts.c.expires_at, postgresql_where=artifacts.c.expired_at.is_(None))

# ------------------------------------------------------------------------------------- per-user choices

tool_settings = sa.Table(
    "tool_settings",
    metadata,
    sa.Column("user_name", sa.Text, _user_fk(), primary_key=True),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), primary_key=True),
    sa.Column("context", sa.Text, primary_key=True),
    sa.Column("schema_hash", sa.Text, primary_key=True),  # hash of the settings_schema (changed schema: fresh)
    sa.Column("value", JSONB, nullable=False, server_default=_json("{}")),  # the saved values
    sa.Column("updated_at", TS, nullable=False, server_default=_now()),
    sa.CheckConstraint(_in("context", RUN_CONTEXTS), name="context"),
    sa.CheckConstraint("jsonb_typeof(value) = 'object'", name="value_object"),
)
sa.Index("ix_tool_settings_tool_id", tool_settings.c.tool_id)

favorites = sa.Table(
    "favorites",
    metadata,
    sa.Column("user_name", sa.Text, _user_fk(), primary_key=True),
    sa.Column("tool_id", sa.BigInteger, _tool_fk(), primary_key=True),
    _created_at(),
)
sa.Index("ix_favorites_tool_id", favorites.c.tool_id)

# ---------------------------------------------------------------------------------------- AI assistance

# One row per request to the AI endpoint: the per-user rate limit and token budget are computed from it
# (kept in the database so that a second service replica sees the same counts).
ai_usage = sa.Table(
    "ai_usage",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("user_name", sa.Text, _user_fk(), nullable=False),
    sa.Column("capability", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("requested_at", TS, nullable=False, server_default=_now()),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("succeeded", sa.Boolean, nullable=True),  # null while streaming
    sa.CheckConstraint(_in("capability", AI_CAPABILITIES), name="capability"),
    sa.CheckConstraint("prompt_tokens >= 0 AND completion_tokens >= 0", name="tokens_non_negative"),
)
sa.Index("ix_ai_usage_user_name_requested_at", ai_usage.c.user_name, ai_usage.c.requested_at)
