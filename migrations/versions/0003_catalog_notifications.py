"""Postgres tells the service when the catalog or a user's favorites change (LISTEN/NOTIFY).

The service keeps catalog pages in memory (``skriptoteket_ext/catalog_cache.py``); these triggers are what keeps
that cache correct, whoever writes: any service replica, the seeding command, an operator in psql. A statement
on ``tools`` or its tag tables notifies ``skriptoteket_catalog``; a change of favorites notifies
``skriptoteket_favorites`` with the user's name. Notifications are sent at commit, and identical ones within
a transaction are sent once, so a bulk change costs one message.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = 'skriptoteket'
CATALOG_TABLES = ('tools', 'tool_professions', 'tool_categories')


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION {SCHEMA}.notify_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('skriptoteket_catalog', '');
            RETURN NULL;
        END $$""")
    for table in CATALOG_TABLES:
        op.execute(f"""
            CREATE TRIGGER {table}_notify_catalog
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {SCHEMA}.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_catalog_changed()""")
    op.execute(f"""
        CREATE FUNCTION {SCHEMA}.notify_favorites_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('skriptoteket_favorites', COALESCE(NEW.user_name, OLD.user_name));
            RETURN NULL;
        END $$""")
    op.execute(f"""
        CREATE TRIGGER favorites_notify
        AFTER INSERT OR UPDATE OR DELETE ON {SCHEMA}.favorites
        FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_favorites_changed()""")
    # TRUNCATE has no rows: every user's favorites are gone, which the cache learns as a catalog change.
    op.execute(f"""
        CREATE TRIGGER favorites_truncate_notify
        AFTER TRUNCATE ON {SCHEMA}.favorites
        FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_catalog_changed()""")


def downgrade() -> None:
    op.execute(f"DROP TRIGGER favorites_truncate_notify ON {SCHEMA}.favorites")
    op.execute(f"DROP TRIGGER favorites_notify ON {SCHEMA}.favorites")
    op.execute(f"DROP FUNCTION {SCHEMA}.notify_favorites_changed()")
    for table in CATALOG_TABLES:
        op.execute(f"DROP TRIGGER {table}_notify_catalog ON {SCHEMA}.{table}")
    op.execute(f"DROP FUNCTION {SCHEMA}.notify_catalog_changed()")
