"""Initial schema: every table of the service, the taxonomy seed, the one-active-version index.

Written out explicitly (no autogenerate at runtime). It must create exactly what skriptoteket_ext/tables.py
describes: tests/integration/test_migrations.py compares the two after upgrading. Constraint names are final
(op.f), so the naming convention of the current tables.py never changes what this revision creates.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = 'skriptoteket'


def upgrade() -> None:

    op.create_table('categories',
        sa.Column('slug', sa.Text(), nullable=False),
        sa.Column('label_en', sa.Text(), nullable=False),
        sa.Column('label_sv', sa.Text(), nullable=False),
        sa.Column('sort_order', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.CheckConstraint("slug ~ '^[a-z0-9]+(?:-[a-z0-9]+)*$'", name=op.f('ck_categories_slug_format')),
        sa.PrimaryKeyConstraint('slug', name=op.f('pk_categories')),
        schema=SCHEMA
    )

    op.create_table('professions',
        sa.Column('slug', sa.Text(), nullable=False),
        sa.Column('label_en', sa.Text(), nullable=False),
        sa.Column('label_sv', sa.Text(), nullable=False),
        sa.Column('sort_order', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.CheckConstraint("slug ~ '^[a-z0-9]+(?:-[a-z0-9]+)*$'", name=op.f('ck_professions_slug_format')),
        sa.PrimaryKeyConstraint('slug', name=op.f('pk_professions')),
        schema=SCHEMA
    )

    op.create_table('users',
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('display_name', sa.Text(), nullable=True),
        sa.Column('language', sa.Text(), nullable=True),
        sa.Column('first_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("language IS NULL OR language IN ('en', 'sv')", name=op.f('ck_users_language')),
        sa.CheckConstraint('char_length(name) BETWEEN 1 AND 255', name=op.f('ck_users_name_length')),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_users')),
        schema=SCHEMA
    )

    op.create_table('ai_usage',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('capability', sa.Text(), nullable=False),
        sa.Column('model', sa.Text(), nullable=True),
        sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('prompt_tokens', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('succeeded', sa.Boolean(), nullable=True),
        sa.CheckConstraint("capability IN ('generate', 'edit', 'explain', 'complete')", name=op.f('ck_ai_usage_capability')),
        sa.CheckConstraint('prompt_tokens >= 0 AND completion_tokens >= 0', name=op.f('ck_ai_usage_tokens_non_negative')),
        sa.ForeignKeyConstraint(['user_name'], ['skriptoteket.users.name'], name=op.f('fk_ai_usage_user_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_usage')),
        schema=SCHEMA
    )
    op.create_index('ix_ai_usage_user_name_requested_at', 'ai_usage', ['user_name', 'requested_at'], schema=SCHEMA)

    op.create_table('tools',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('slug', sa.Text(), nullable=False),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('summary', sa.Text(), server_default='', nullable=False),
        sa.Column('owner_name', sa.Text(), nullable=False),
        sa.Column('is_published', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('published_by', sa.Text(), nullable=True),
        sa.Column('slug_locked', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('created_by', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_by', sa.Text(), nullable=True),
        sa.CheckConstraint("btrim(title) <> ''", name=op.f('ck_tools_title_not_blank')),
        sa.CheckConstraint("char_length(slug) BETWEEN 1 AND 128 AND slug ~ '^[a-z0-9]+(?:-[a-z0-9]+)*$'", name=op.f('ck_tools_slug_format')),
        sa.CheckConstraint('NOT is_published OR (slug_locked AND published_at IS NOT NULL)', name=op.f('ck_tools_published_locks_slug')),
        sa.ForeignKeyConstraint(['owner_name'], ['skriptoteket.users.name'], name=op.f('fk_tools_owner_name_users'), onupdate='CASCADE', ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tools')),
        sa.UniqueConstraint('slug', name=op.f('uq_tools_slug')),
        schema=SCHEMA
    )
    op.create_index('ix_tools_lower_title', 'tools', [sa.literal_column('lower(title)')], schema=SCHEMA)
    op.create_index('ix_tools_owner_name', 'tools', ['owner_name'], schema=SCHEMA)
    op.create_index('ix_tools_published_title', 'tools', ['title'], schema=SCHEMA, postgresql_where=sa.text('is_published'))
    op.create_index('ix_tools_search', 'tools', [sa.literal_column("to_tsvector('simple'::regconfig, (title || ' ') || summary)")], schema=SCHEMA, postgresql_using='gin')

    op.create_table('draft_locks',
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('holder_name', sa.Text(), nullable=False),
        sa.Column('acquired_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('forced_by', sa.Text(), nullable=True),
        sa.CheckConstraint('expires_at > acquired_at', name=op.f('ck_draft_locks_expires_after_acquired')),
        sa.ForeignKeyConstraint(['holder_name'], ['skriptoteket.users.name'], name=op.f('fk_draft_locks_holder_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_draft_locks_tool_id_tools'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tool_id', name=op.f('pk_draft_locks')),
        schema=SCHEMA
    )
    op.create_index('ix_draft_locks_holder_name', 'draft_locks', ['holder_name'], schema=SCHEMA)

    op.create_table('favorites',
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_favorites_tool_id_tools'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_name'], ['skriptoteket.users.name'], name=op.f('fk_favorites_user_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_name', 'tool_id', name=op.f('pk_favorites')),
        schema=SCHEMA
    )
    op.create_index('ix_favorites_tool_id', 'favorites', ['tool_id'], schema=SCHEMA)

    op.create_table('maintainer_audit',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('action', sa.Text(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor_name', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("action IN ('add', 'remove')", name=op.f('ck_maintainer_audit_action')),
        sa.CheckConstraint("btrim(reason) <> ''", name=op.f('ck_maintainer_audit_reason_not_blank')),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_maintainer_audit_tool_id_tools'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_maintainer_audit')),
        schema=SCHEMA
    )
    op.create_index('ix_maintainer_audit_tool_id_at', 'maintainer_audit', ['tool_id', 'at'], schema=SCHEMA)

    # sessions.last_run_id -> runs.id is added once runs exists (the two tables refer to each other).
    op.create_table('sessions',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('state', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('state_rev', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('offered_actions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('last_run_id', sa.UUID(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("context IN ('production', 'sandbox')", name=op.f('ck_sessions_context')),
        sa.CheckConstraint("jsonb_typeof(offered_actions) = 'array'", name=op.f('ck_sessions_offered_actions_array')),
        sa.CheckConstraint("jsonb_typeof(state) = 'object'", name=op.f('ck_sessions_state_object')),
        sa.CheckConstraint('state_rev >= 0', name=op.f('ck_sessions_state_rev_non_negative')),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_sessions_tool_id_tools'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_name'], ['skriptoteket.users.name'], name=op.f('fk_sessions_user_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
        sa.UniqueConstraint('tool_id', 'user_name', 'context', name=op.f('uq_sessions_tool_id_user_name_context')),
        schema=SCHEMA
    )
    op.create_index('ix_sessions_last_run_id', 'sessions', ['last_run_id'], schema=SCHEMA)
    op.create_index('ix_sessions_user_name', 'sessions', ['user_name'], schema=SCHEMA)

    op.create_table('suggestions',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('description', sa.Text(), server_default='', nullable=False),
        sa.Column('suggested_by', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('status', sa.Text(), server_default='pending', nullable=False),
        sa.Column('decided_by', sa.Text(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rationale', sa.Text(), nullable=True),
        sa.Column('tool_id', sa.BigInteger(), nullable=True),
        sa.CheckConstraint("(status = 'pending') = (decided_at IS NULL)", name=op.f('ck_suggestions_decided_iff_not_pending')),
        sa.CheckConstraint("btrim(title) <> ''", name=op.f('ck_suggestions_title_not_blank')),
        sa.CheckConstraint("status <> 'denied' OR btrim(coalesce(rationale, '')) <> ''", name=op.f('ck_suggestions_denied_has_rationale')),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'denied')", name=op.f('ck_suggestions_status')),
        sa.ForeignKeyConstraint(['suggested_by'], ['skriptoteket.users.name'], name=op.f('fk_suggestions_suggested_by_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_suggestions_tool_id_tools'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_suggestions')),
        schema=SCHEMA
    )
    op.create_index('ix_suggestions_status_created_at', 'suggestions', ['status', 'created_at'], schema=SCHEMA)
    op.create_index('ix_suggestions_suggested_by', 'suggestions', ['suggested_by'], schema=SCHEMA)
    op.create_index('ix_suggestions_tool_id', 'suggestions', ['tool_id'], schema=SCHEMA)

    op.create_table('tool_categories',
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('category_slug', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['category_slug'], ['skriptoteket.categories.slug'], name=op.f('fk_tool_categories_category_slug_categories'), onupdate='CASCADE', ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_tool_categories_tool_id_tools'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tool_id', 'category_slug', name=op.f('pk_tool_categories')),
        schema=SCHEMA
    )
    op.create_index('ix_tool_categories_category_slug', 'tool_categories', ['category_slug'], schema=SCHEMA)

    op.create_table('tool_maintainers',
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('added_by', sa.Text(), nullable=False),
        sa.Column('added_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_tool_maintainers_tool_id_tools'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_name'], ['skriptoteket.users.name'], name=op.f('fk_tool_maintainers_user_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tool_id', 'user_name', name=op.f('pk_tool_maintainers')),
        schema=SCHEMA
    )
    op.create_index('ix_tool_maintainers_user_name', 'tool_maintainers', ['user_name'], schema=SCHEMA)

    op.create_table('tool_professions',
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('profession_slug', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['profession_slug'], ['skriptoteket.professions.slug'], name=op.f('fk_tool_professions_profession_slug_professions'), onupdate='CASCADE', ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_tool_professions_tool_id_tools'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tool_id', 'profession_slug', name=op.f('pk_tool_professions')),
        schema=SCHEMA
    )
    op.create_index('ix_tool_professions_profession_slug', 'tool_professions', ['profession_slug'], schema=SCHEMA)

    op.create_table('tool_settings',
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('schema_hash', sa.Text(), nullable=False),
        sa.Column('value', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("context IN ('production', 'sandbox')", name=op.f('ck_tool_settings_context')),
        sa.CheckConstraint("jsonb_typeof(value) = 'object'", name=op.f('ck_tool_settings_value_object')),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_tool_settings_tool_id_tools'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_name'], ['skriptoteket.users.name'], name=op.f('fk_tool_settings_user_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_name', 'tool_id', 'context', 'schema_hash', name=op.f('pk_tool_settings')),
        schema=SCHEMA
    )
    op.create_index('ix_tool_settings_tool_id', 'tool_settings', ['tool_id'], schema=SCHEMA)

    op.create_table('tool_versions',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('version_no', sa.Integer(), nullable=False),
        sa.Column('state', sa.Text(), server_default='draft', nullable=False),
        sa.Column('source', sa.Text(), server_default='', nullable=False),
        sa.Column('entrypoint', sa.Text(), server_default='run_tool', nullable=False),
        sa.Column('input_schema', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('settings_schema', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('usage_instructions', sa.Text(), nullable=True),
        sa.Column('parent_version_id', sa.BigInteger(), nullable=True),
        sa.Column('derived_from_version_id', sa.BigInteger(), nullable=True),
        sa.Column('was_active', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('change_message', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('created_by', sa.Text(), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('submitted_by', sa.Text(), nullable=True),
        sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reviewed_by', sa.Text(), nullable=True),
        sa.Column('state_changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('state_changed_by', sa.Text(), nullable=True),
        sa.CheckConstraint("entrypoint ~ '^[A-Za-z_][A-Za-z0-9_]*$'", name=op.f('ck_tool_versions_entrypoint_identifier')),
        sa.CheckConstraint("jsonb_typeof(input_schema) = 'array'", name=op.f('ck_tool_versions_input_schema_array')),
        sa.CheckConstraint("settings_schema IS NULL OR jsonb_typeof(settings_schema) = 'array'", name=op.f('ck_tool_versions_settings_schema_array')),
        sa.CheckConstraint("state <> 'active' OR was_active", name=op.f('ck_tool_versions_active_was_active')),
        sa.CheckConstraint("state IN ('draft', 'in_review', 'active', 'archived')", name=op.f('ck_tool_versions_state')),
        sa.CheckConstraint('version_no > 0', name=op.f('ck_tool_versions_version_no_positive')),
        sa.ForeignKeyConstraint(['tool_id', 'derived_from_version_id'], ['skriptoteket.tool_versions.tool_id', 'skriptoteket.tool_versions.id'], name=op.f('fk_tool_versions_tool_id_derived_from_version_id_tool_versions'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id', 'parent_version_id'], ['skriptoteket.tool_versions.tool_id', 'skriptoteket.tool_versions.id'], name=op.f('fk_tool_versions_tool_id_parent_version_id_tool_versions'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_tool_versions_tool_id_tools'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tool_versions')),
        sa.UniqueConstraint('tool_id', 'id', name=op.f('uq_tool_versions_tool_id_id')),
        sa.UniqueConstraint('tool_id', 'version_no', name=op.f('uq_tool_versions_tool_id_version_no')),
        schema=SCHEMA
    )
    op.create_index('ix_tool_versions_in_review', 'tool_versions', ['submitted_at'], schema=SCHEMA, postgresql_where=sa.text("state = 'in_review'"))
    # No fork of the draft chain: one draft per parent.
    op.create_index('uq_tool_versions_draft_parent', 'tool_versions', ['parent_version_id'], unique=True, schema=SCHEMA, postgresql_where=sa.text("state = 'draft'"))
    # At most one active version per tool, enforced by the database (partial unique index).
    op.create_index('uq_tool_versions_one_active', 'tool_versions', ['tool_id'], unique=True, schema=SCHEMA, postgresql_where=sa.text("state = 'active'"))

    op.create_table('sandbox_snapshots',
        sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('base_version_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.Text(), server_default='', nullable=False),
        sa.Column('entrypoint', sa.Text(), server_default='run_tool', nullable=False),
        sa.Column('input_schema', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('settings_schema', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('usage_instructions', sa.Text(), nullable=True),
        sa.CheckConstraint("entrypoint ~ '^[A-Za-z_][A-Za-z0-9_]*$'", name=op.f('ck_sandbox_snapshots_entrypoint_identifier')),
        sa.CheckConstraint("jsonb_typeof(input_schema) = 'array'", name=op.f('ck_sandbox_snapshots_input_schema_array')),
        sa.CheckConstraint("settings_schema IS NULL OR jsonb_typeof(settings_schema) = 'array'", name=op.f('ck_sandbox_snapshots_settings_schema_array')),
        sa.ForeignKeyConstraint(['tool_id', 'base_version_id'], ['skriptoteket.tool_versions.tool_id', 'skriptoteket.tool_versions.id'], name=op.f('fk_sandbox_snapshots_tool_id_base_version_id_tool_versions'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_sandbox_snapshots_tool_id_tools'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_name'], ['skriptoteket.users.name'], name=op.f('fk_sandbox_snapshots_user_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_snapshots')),
        schema=SCHEMA
    )
    op.create_index('ix_sandbox_snapshots_expires_at', 'sandbox_snapshots', ['expires_at'], schema=SCHEMA)
    op.create_index('ix_sandbox_snapshots_tool_id_user_name', 'sandbox_snapshots', ['tool_id', 'user_name'], schema=SCHEMA)
    op.create_index('ix_sandbox_snapshots_user_name', 'sandbox_snapshots', ['user_name'], schema=SCHEMA)

    op.create_table('session_files',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('session_id', sa.BigInteger(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('blob_key', sa.Text(), nullable=False),
        sa.Column('content_type', sa.Text(), nullable=True),
        sa.Column('uploaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("name <> '' AND position('/' in name) = 0", name=op.f('ck_session_files_name_plain')),
        sa.CheckConstraint('position >= 0', name=op.f('ck_session_files_position_non_negative')),
        sa.CheckConstraint('size >= 0', name=op.f('ck_session_files_size_non_negative')),
        sa.ForeignKeyConstraint(['session_id'], ['skriptoteket.sessions.id'], name=op.f('fk_session_files_session_id_sessions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_session_files')),
        sa.UniqueConstraint('session_id', 'name', name=op.f('uq_session_files_session_id_name')),
        sa.UniqueConstraint('session_id', 'position', name=op.f('uq_session_files_session_id_position')),
        schema=SCHEMA
    )
    op.create_index('ix_session_files_last_used_at', 'session_files', ['last_used_at'], schema=SCHEMA)

    op.create_table('suggestion_categories',
        sa.Column('suggestion_id', sa.BigInteger(), nullable=False),
        sa.Column('category_slug', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['category_slug'], ['skriptoteket.categories.slug'], name=op.f('fk_suggestion_categories_category_slug_categories'), onupdate='CASCADE', ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['suggestion_id'], ['skriptoteket.suggestions.id'], name=op.f('fk_suggestion_categories_suggestion_id_suggestions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('suggestion_id', 'category_slug', name=op.f('pk_suggestion_categories')),
        schema=SCHEMA
    )

    op.create_table('suggestion_decisions',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('suggestion_id', sa.BigInteger(), nullable=False),
        sa.Column('decision', sa.Text(), nullable=False),
        sa.Column('rationale', sa.Text(), nullable=True),
        sa.Column('decided_by', sa.Text(), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=True),
        sa.CheckConstraint("decision <> 'denied' OR btrim(coalesce(rationale, '')) <> ''", name=op.f('ck_suggestion_decisions_denied_has_rationale')),
        sa.CheckConstraint("decision IN ('accepted', 'denied')", name=op.f('ck_suggestion_decisions_decision')),
        sa.ForeignKeyConstraint(['suggestion_id'], ['skriptoteket.suggestions.id'], name=op.f('fk_suggestion_decisions_suggestion_id_suggestions'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_suggestion_decisions_tool_id_tools'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_suggestion_decisions')),
        schema=SCHEMA
    )
    op.create_index('ix_suggestion_decisions_suggestion_id', 'suggestion_decisions', ['suggestion_id'], schema=SCHEMA)
    op.create_index('ix_suggestion_decisions_tool_id', 'suggestion_decisions', ['tool_id'], schema=SCHEMA)

    op.create_table('suggestion_professions',
        sa.Column('suggestion_id', sa.BigInteger(), nullable=False),
        sa.Column('profession_slug', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['profession_slug'], ['skriptoteket.professions.slug'], name=op.f('fk_suggestion_professions_profession_slug_professions'), onupdate='CASCADE', ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['suggestion_id'], ['skriptoteket.suggestions.id'], name=op.f('fk_suggestion_professions_suggestion_id_suggestions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('suggestion_id', 'profession_slug', name=op.f('pk_suggestion_professions')),
        schema=SCHEMA
    )

    op.create_table('tool_events',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('version_id', sa.BigInteger(), nullable=True),
        sa.Column('action', sa.Text(), nullable=False),
        sa.Column('actor_name', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.CheckConstraint("action ~ '^[a-z][a-z_]*$'", name=op.f('ck_tool_events_action_format')),
        sa.CheckConstraint("jsonb_typeof(details) = 'object'", name=op.f('ck_tool_events_details_object')),
        sa.ForeignKeyConstraint(['tool_id', 'version_id'], ['skriptoteket.tool_versions.tool_id', 'skriptoteket.tool_versions.id'], name=op.f('fk_tool_events_tool_id_version_id_tool_versions'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_tool_events_tool_id_tools'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tool_events')),
        schema=SCHEMA
    )
    op.create_index('ix_tool_events_tool_id_at', 'tool_events', ['tool_id', 'at'], schema=SCHEMA)

    op.create_table('runs',
        sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
        sa.Column('tool_id', sa.BigInteger(), nullable=False),
        sa.Column('version_id', sa.BigInteger(), nullable=True),
        sa.Column('snapshot_id', sa.UUID(), nullable=True),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('status', sa.Text(), server_default='running', nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('input_values', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('input_manifest', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text('\'{"files": []}\'::jsonb'), nullable=False),
        sa.Column('stdout', sa.Text(), nullable=True),
        sa.Column('stderr', sa.Text(), nullable=True),
        sa.Column('error_summary', sa.Text(), nullable=True),
        sa.Column('result_payload', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('action_id', sa.Text(), nullable=True),
        sa.Column('session_id', sa.BigInteger(), nullable=True),
        sa.CheckConstraint("(status = 'running') = (finished_at IS NULL)", name=op.f('ck_runs_finished_iff_not_running')),
        sa.CheckConstraint("context = 'sandbox' OR version_id IS NOT NULL", name=op.f('ck_runs_production_has_version')),
        sa.CheckConstraint("context IN ('production', 'sandbox')", name=op.f('ck_runs_context')),
        sa.CheckConstraint("jsonb_typeof(input_manifest) = 'object'", name=op.f('ck_runs_input_manifest_object')),
        sa.CheckConstraint("jsonb_typeof(input_values) = 'object'", name=op.f('ck_runs_input_values_object')),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'timed_out', 'cancelled')", name=op.f('ck_runs_status')),
        sa.CheckConstraint('action_id IS NULL OR char_length(action_id) BETWEEN 1 AND 64', name=op.f('ck_runs_action_id_length')),
        sa.ForeignKeyConstraint(['session_id'], ['skriptoteket.sessions.id'], name=op.f('fk_runs_session_id_sessions'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['snapshot_id'], ['skriptoteket.sandbox_snapshots.id'], name=op.f('fk_runs_snapshot_id_sandbox_snapshots'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['tool_id', 'version_id'], ['skriptoteket.tool_versions.tool_id', 'skriptoteket.tool_versions.id'], name=op.f('fk_runs_tool_id_version_id_tool_versions'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tool_id'], ['skriptoteket.tools.id'], name=op.f('fk_runs_tool_id_tools'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_name'], ['skriptoteket.users.name'], name=op.f('fk_runs_user_name_users'), onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
        schema=SCHEMA
    )
    op.create_index('ix_runs_deadline_at_running', 'runs', ['deadline_at'], schema=SCHEMA, postgresql_where=sa.text("status = 'running'"))
    op.create_index('ix_runs_session_id', 'runs', ['session_id'], schema=SCHEMA)
    op.create_index('ix_runs_snapshot_id', 'runs', ['snapshot_id'], schema=SCHEMA)
    op.create_index('ix_runs_tool_id_requested_at', 'runs', ['tool_id', sa.literal_column('requested_at DESC')], schema=SCHEMA)
    op.create_index('ix_runs_user_name_requested_at', 'runs', ['user_name', sa.literal_column('requested_at DESC')], schema=SCHEMA)

    op.create_foreign_key(
        op.f('fk_sessions_last_run_id_runs'), 'sessions', 'runs', ['last_run_id'], ['id'],
        source_schema=SCHEMA, referent_schema=SCHEMA, ondelete='SET NULL',
    )

    op.create_table('artifacts',
        sa.Column('run_id', sa.UUID(), nullable=False),
        sa.Column('artifact_id', sa.Text(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        sa.Column('blob_key', sa.Text(), nullable=False),
        sa.Column('content_type', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("artifact_id <> '' AND position('/' in artifact_id) = 0", name=op.f('ck_artifacts_artifact_id_plain')),
        sa.CheckConstraint("path <> '' AND path !~ '^/' AND path !~ '(^|/)\\.\\.(/|$)'", name=op.f('ck_artifacts_path_relative')),
        sa.CheckConstraint('bytes >= 0', name=op.f('ck_artifacts_bytes_non_negative')),
        sa.ForeignKeyConstraint(['run_id'], ['skriptoteket.runs.id'], name=op.f('fk_artifacts_run_id_runs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id', 'artifact_id', name=op.f('pk_artifacts')),
        sa.UniqueConstraint('run_id', 'path', name=op.f('uq_artifacts_run_id_path')),
        schema=SCHEMA
    )
    op.create_index('ix_artifacts_expires_at', 'artifacts', ['expires_at'], schema=SCHEMA, postgresql_where=sa.text('expired_at IS NULL'))

    _seed_taxonomy()


def _seed_taxonomy() -> None:
    # The rows are written out here (not imported from tables.py) so this revision stays what it was.
    taxonomy = sa.table(
        'professions', sa.column('slug', sa.Text), sa.column('label_en', sa.Text), sa.column('label_sv', sa.Text),
        sa.column('sort_order', sa.Integer),
        schema=SCHEMA,
    )
    op.bulk_insert(taxonomy, [
        {'slug': 'teacher', 'label_en': 'Teacher', 'label_sv': 'Lärare', 'sort_order': 10},
        {'slug': 'special-needs-educator', 'label_en': 'Special-needs educator', 'label_sv': 'Specialpedagog', 'sort_order': 20},
        {'slug': 'school-administrator', 'label_en': 'School administrator', 'label_sv': 'Skoladministratör', 'sort_order': 30},
        {'slug': 'principal', 'label_en': 'Principal', 'label_sv': 'Rektor', 'sort_order': 40},
        {'slug': 'shared', 'label_en': 'Shared', 'label_sv': 'Gemensamt', 'sort_order': 50},
    ])
    taxonomy = sa.table(
        'categories', sa.column('slug', sa.Text), sa.column('label_en', sa.Text), sa.column('label_sv', sa.Text),
        sa.column('sort_order', sa.Integer),
        schema=SCHEMA,
    )
    op.bulk_insert(taxonomy, [
        {'slug': 'lesson-planning', 'label_en': 'Lesson planning', 'label_sv': 'Lektionsplanering', 'sort_order': 10},
        {'slug': 'mentoring', 'label_en': 'Mentoring', 'label_sv': 'Mentorskap', 'sort_order': 20},
        {'slug': 'administration', 'label_en': 'Administration', 'label_sv': 'Administration', 'sort_order': 30},
        {'slug': 'other', 'label_en': 'Other', 'label_sv': 'Övrigt', 'sort_order': 40},
    ])


# Every table of this revision, in creation order; downgrade drops them in reverse (indexes go with them).
TABLES = (
    'categories', 'professions', 'users', 'ai_usage', 'tools', 'draft_locks', 'favorites', 'maintainer_audit',
    'sessions', 'suggestions', 'tool_categories', 'tool_maintainers', 'tool_professions', 'tool_settings',
    'tool_versions', 'sandbox_snapshots', 'session_files', 'suggestion_categories', 'suggestion_decisions',
    'suggestion_professions', 'tool_events', 'runs', 'artifacts',
)


def downgrade() -> None:
    op.drop_constraint('fk_sessions_last_run_id_runs', 'sessions', schema=SCHEMA, type_='foreignkey')
    for name in reversed(TABLES):
        op.drop_table(name, schema=SCHEMA)
