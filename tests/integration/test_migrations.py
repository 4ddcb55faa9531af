"""The ``skriptoteket`` schema's migrations against a real PostgreSQL (never SQLite, never a mock).

Covers: upgrade from empty, the taxonomy seed, the database-enforced rules (one active version per tool, the
slug format, ...), downgrade to base and upgrade again, that JupyterHub's tables are never touched, and that
skriptoteket_ext/tables.py and the migrations describe the same schema (so they cannot drift).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.exc import IntegrityError

from skriptoteket_ext import migrate
from skriptoteket_ext import tables as t

SCHEMA = t.SCHEMA
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(fresh_db_url):
    engine = sa.create_engine(fresh_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def migrated(fresh_db_url, engine):
    migrate.upgrade(fresh_db_url)
    return engine


def schema_tables(engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.scalars(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": SCHEMA}
            )
        )


def add_user(conn, name="ada"):
    conn.execute(sa.insert(t.users).values(name=name))


def add_tool(conn, slug="group-maker", owner="ada") -> int:
    return conn.execute(
        sa.insert(t.tools).values(slug=slug, title="Group maker", owner_name=owner, created_by=owner).returning(t.tools.c.id)
    ).scalar_one()


def add_version(conn, tool_id, version_no, state="draft", **kw) -> int:
    values = dict(tool_id=tool_id, version_no=version_no, state=state, created_by="ada", source="def run_tool(i, o): pass")
    if state == "active":
        values["was_active"] = True
    values.update(kw)
    return conn.execute(sa.insert(t.tool_versions).values(**values).returning(t.tool_versions.c.id)).scalar_one()


def expect_violation(engine, fn, constraint: str) -> None:
    """``fn(conn)`` must fail with an IntegrityError naming ``constraint``; the transaction is rolled back."""
    with engine.connect() as conn:
        with pytest.raises(IntegrityError) as info:
            fn(conn)
        conn.rollback()
    assert constraint in str(info.value)


# ----------------------------------------------------------------------------------------------- upgrade


def test_upgrade_from_empty_creates_every_table_and_the_seed(fresh_db_url, engine):
    assert migrate.current(fresh_db_url) is None
    assert not migrate.is_up_to_date(fresh_db_url)

    migrate.upgrade(fresh_db_url)

    assert migrate.current(fresh_db_url) == migrate.head() == "0003"
    assert migrate.is_up_to_date(fresh_db_url)
    expected = {table.name for table in t.metadata.sorted_tables}
    assert {"users", "professions", "categories", "tool_professions", "tool_categories", "tools", "tool_versions",
            "tool_maintainers", "maintainer_audit", "suggestions", "suggestion_decisions", "runs", "sessions",
            "session_files", "tool_settings", "favorites", "draft_locks", "sandbox_snapshots", "artifacts"} <= expected
    assert schema_tables(engine) == expected | {"alembic_version"}

    with engine.connect() as conn:
        professions = conn.execute(
            sa.select(t.professions.c.slug, t.professions.c.label_en, t.professions.c.label_sv)
            .order_by(t.professions.c.sort_order)
        ).all()
        categories = conn.execute(
            sa.select(t.categories.c.slug, t.categories.c.label_en, t.categories.c.label_sv)
            .order_by(t.categories.c.sort_order)
        ).all()
    assert [tuple(r) for r in professions] == [(s, en, sv) for s, en, sv, _ in t.SEED_PROFESSIONS]
    assert [r.label_sv for r in professions] == ["Lärare", "Specialpedagog", "Skoladministratör", "Rektor", "Gemensamt"]
    assert [tuple(r) for r in categories] == [(s, en, sv) for s, en, sv, _ in t.SEED_CATEGORIES]
    assert [r.label_sv for r in categories] == ["Lektionsplanering", "Mentorskap", "Administration", "Övrigt"]

    migrate.upgrade(fresh_db_url)  # idempotent at head
    assert migrate.current(fresh_db_url) == "0003"


def test_tables_py_and_the_migration_do_not_drift(fresh_db_url, migrated):
    # Columns, types, nullability, server defaults, FKs, unique constraints, indexes (incl. expressions).
    assert migrate.compare(fresh_db_url) == []

    # Alembic does not compare CHECK constraints or partial-index predicates: do it here.
    insp = sa.inspect(migrated)
    for table in t.metadata.sorted_tables:
        declared = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        reflected = {c["name"] for c in insp.get_check_constraints(table.name, schema=SCHEMA)}
        assert reflected == declared, table.name
        declared_where = {
            ix.name: ix.dialect_options["postgresql"]["where"] for ix in table.indexes
            if ix.dialect_options["postgresql"]["where"] is not None
        }
        reflected_where = {
            ix["name"]: ix["dialect_options"]["postgresql_where"] for ix in insp.get_indexes(table.name, schema=SCHEMA)
            if ix.get("dialect_options", {}).get("postgresql_where")
        }
        assert set(reflected_where) == set(declared_where), table.name
        for name, where in declared_where.items():
            compiled = str(where.compile(dialect=migrated.dialect, compile_kwargs={"literal_binds": True, "include_table": False}))
            assert _norm(reflected_where[name]) == _norm(compiled), name


def test_the_drift_check_is_not_vacuous(fresh_db_url, migrated):
    changed = sa.MetaData(schema=SCHEMA, naming_convention=t.NAMING_CONVENTION)
    for table in t.metadata.sorted_tables:
        if table.name != "favorites":  # a table the code no longer declares
            table.to_metadata(changed)
    changed.tables[f"{SCHEMA}.tools"].append_column(sa.Column("colour", sa.Text))  # and a new column
    diffs = migrate.compare(fresh_db_url, changed)
    kinds = {(d[0], getattr(d[-1], "name", None)) for d in diffs if isinstance(d, tuple)}
    assert ("add_column", "colour") in kinds
    assert ("remove_table", "favorites") in kinds


def _norm(sql: str) -> str:
    sql = re.sub(r"::\w+", "", sql)
    return re.sub(r"[\s()]", "", sql.replace(f"{SCHEMA}.", "")).lower()


def test_alembic_command_line_works_with_the_ini_and_x_url(fresh_db_url):
    env = {k: v for k, v in os.environ.items() if k != "SKRIPTOTEKET_DB_URL"}
    alembic = [sys.executable, "-m", "alembic", "-c", str(REPO / "migrations" / "alembic.ini"), "-x", f"url={fresh_db_url}"]
    subprocess.run([*alembic, "upgrade", "head"], check=True, capture_output=True, env=env, cwd=REPO)
    out = subprocess.run([*alembic, "current"], check=True, capture_output=True, text=True, env=env, cwd=REPO)
    assert "0003 (head)" in out.stdout
    # ... and the environment variable when no URL is given.
    env["SKRIPTOTEKET_DB_URL"] = fresh_db_url
    alembic = alembic[:-2]
    subprocess.run([*alembic, "downgrade", "base"], check=True, capture_output=True, env=env, cwd=REPO)
    assert migrate.current(fresh_db_url) is None


# ----------------------------------------------------------------------------------- database-held rules


def test_only_one_active_version_per_tool(migrated):
    with migrated.begin() as conn:
        add_user(conn)
        tool = add_tool(conn)
        other = add_tool(conn, slug="pdf-maker")
        add_version(conn, tool, 1, "archived", was_active=True)
        add_version(conn, tool, 2, "archived", was_active=True)  # two archived: fine
        add_version(conn, tool, 3, "active")
        add_version(conn, other, 1, "active")  # another tool's active version: fine

    expect_violation(migrated, lambda c: add_version(c, tool, 4, "active"), "uq_tool_versions_one_active")

    # Copy-on-activate in one transaction: archive the old active, then insert the new one.
    with migrated.begin() as conn:
        conn.execute(
            sa.update(t.tool_versions).where(t.tool_versions.c.tool_id == tool, t.tool_versions.c.state == "active")
            .values(state="archived")
        )
        add_version(conn, tool, 4, "active", derived_from_version_id=None)
        states = conn.execute(
            sa.select(t.tool_versions.c.state).where(t.tool_versions.c.tool_id == tool).order_by("version_no")
        ).scalars().all()
    assert states == ["archived", "archived", "archived", "active"]

    # An active version must be flagged was_active (rollback may only pick versions that once were active).
    def activate_a_never_active_version(conn):
        version = add_version(conn, other, 2, "archived")
        conn.execute(sa.update(t.tool_versions).where(t.tool_versions.c.id == version).values(state="active"))

    expect_violation(migrated, activate_a_never_active_version, "ck_tool_versions_active_was_active")


def test_version_numbers_states_and_the_draft_chain(migrated):
    with migrated.begin() as conn:
        add_user(conn)
        tool = add_tool(conn)
        other = add_tool(conn, slug="other-tool")
        v1 = add_version(conn, tool, 1)
        add_version(conn, tool, 2, parent_version_id=v1)
        foreign = add_version(conn, other, 1)
    expect_violation(migrated, lambda c: add_version(c, tool, 2), "uq_tool_versions_tool_id_version_no")
    expect_violation(migrated, lambda c: add_version(c, tool, 3, "published"), "ck_tool_versions_state")
    # Two drafts saved from the same parent: the second lost the race past "the head moved".
    expect_violation(migrated, lambda c: add_version(c, tool, 3, parent_version_id=v1), "uq_tool_versions_draft_parent")
    # A parent from another tool is refused (composite FK).
    expect_violation(
        migrated, lambda c: add_version(c, tool, 3, parent_version_id=foreign),
        "fk_tool_versions_tool_id_parent_version_id_tool_versions",
    )
    expect_violation(migrated, lambda c: add_version(c, tool, 3, entrypoint="run tool"), "ck_tool_versions_entrypoint")
    expect_violation(migrated, lambda c: add_version(c, tool, 3, input_schema={}), "ck_tool_versions_input_schema_array")


@pytest.mark.parametrize(
    "slug", ["Group-maker", "group_maker", "-group", "group-", "group--maker", "", "grupp-ö", "a" * 129, "a b"]
)
def test_slug_check_refuses_a_bad_slug(migrated, slug):
    with migrated.begin() as conn:
        add_user(conn)
    expect_violation(migrated, lambda c: add_tool(c, slug=slug), "ck_tools_slug_format")


def test_slug_check_accepts_good_slugs_and_they_are_unique(migrated):
    with migrated.begin() as conn:
        add_user(conn)
        for slug in ["a", "draft-17", "group-maker-2", "x" * 128]:
            add_tool(conn, slug=slug)
    expect_violation(migrated, lambda c: add_tool(c, slug="draft-17"), "uq_tools_slug")
    # A published tool has its slug locked.
    with migrated.connect() as conn:
        tool = conn.execute(sa.select(t.tools.c.id).where(t.tools.c.slug == "a")).scalar_one()
    expect_violation(
        migrated,
        lambda c: c.execute(sa.update(t.tools).where(t.tools.c.id == tool).values(is_published=True, published_at=sa.func.now())),
        "ck_tools_published_locks_slug",
    )


def test_runs_sessions_and_user_references(migrated):
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    with migrated.begin() as conn:
        add_user(conn)
        tool = add_tool(conn)
        version = add_version(conn, tool, 1, "active")
        session = conn.execute(
            sa.insert(t.sessions).values(tool_id=tool, user_name="ada", context="production").returning(t.sessions.c.id)
        ).scalar_one()
        run = conn.execute(
            sa.insert(t.runs).values(
                tool_id=tool, version_id=version, user_name="ada", context="production", deadline_at=deadline,
                session_id=session,
            ).returning(t.runs.c.id)
        ).scalar_one()
        conn.execute(sa.update(t.sessions).where(t.sessions.c.id == session).values(last_run_id=run, state_rev=1))
        conn.execute(sa.insert(t.artifacts).values(run_id=run, artifact_id="report_pdf", path="report.pdf", bytes=10, blob_key="k"))
        row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run)).one()
    assert row.status == "running" and row.input_manifest == {"files": []} and row.input_values == {}

    run_values = dict(tool_id=tool, version_id=version, user_name="ada", deadline_at=deadline)
    # One session per (tool, user, context).
    expect_violation(
        migrated, lambda c: c.execute(sa.insert(t.sessions).values(tool_id=tool, user_name="ada", context="production")),
        "uq_sessions_tool_id_user_name_context",
    )
    # Finished iff not running; statuses and contexts are closed sets; production runs name their version.
    expect_violation(
        migrated, lambda c: c.execute(sa.insert(t.runs).values(**run_values, context="production", status="succeeded")),
        "ck_runs_finished_iff_not_running",
    )
    expect_violation(
        migrated, lambda c: c.execute(sa.insert(t.runs).values(**run_values, context="staging")), "ck_runs_context"
    )
    expect_violation(
        migrated,
        lambda c: c.execute(sa.insert(t.runs).values(**{**run_values, "version_id": None}, context="production")),
        "ck_runs_production_has_version",
    )
    expect_violation(
        migrated, lambda c: c.execute(sa.insert(t.runs).values(**{**run_values, "user_name": "nobody"}, context="production")),
        "fk_runs_user_name_users",
    )

    # A hub rename follows through every user reference.
    with migrated.begin() as conn:
        conn.execute(sa.update(t.users).where(t.users.c.name == "ada").values(name="ada.lovelace"))
        assert conn.execute(sa.select(t.runs.c.user_name)).scalar_one() == "ada.lovelace"
        assert conn.execute(sa.select(t.tools.c.owner_name)).scalar_one() == "ada.lovelace"
        # Deleting the tool removes its runs, sessions and artifacts (both directions of the run/session cycle).
        conn.execute(sa.delete(t.tools).where(t.tools.c.id == tool))
        assert conn.execute(sa.select(sa.func.count()).select_from(t.artifacts)).scalar_one() == 0


def test_catalog_search_uses_the_shared_expression(migrated):
    with migrated.begin() as conn:
        add_user(conn)
        conn.execute(sa.insert(t.tools).values(slug="gruppindelning", title="Gruppindelning", summary="Delar en klasslista i grupper", owner_name="ada", created_by="ada"))
        conn.execute(sa.insert(t.tools).values(slug="pdf", title="PDF", summary="HTML to PDF", owner_name="ada", created_by="ada"))
        found = conn.execute(
            sa.select(t.tools.c.slug).where(
                t.tool_search_document.op("@@")(sa.func.plainto_tsquery(sa.cast(sa.literal("simple"), REGCONFIG), "klasslista"))
            )
        ).scalars().all()
    assert found == ["gruppindelning"]


# ------------------------------------------------------------------------------------- downgrade, hub


def test_downgrade_to_base_and_back_never_touches_the_hubs_tables(fresh_db_url, engine):
    # JupyterHub's own tables (and its own alembic version table) in the same database.
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.users (id serial PRIMARY KEY, name text UNIQUE)"))
        conn.execute(sa.text("INSERT INTO public.users (name) VALUES ('ada')"))
        conn.execute(sa.text("CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO public.alembic_version VALUES ('hub-rev')"))

    def hub_state():
        with engine.connect() as conn:
            return (
                conn.execute(sa.text("SELECT name FROM public.users")).scalars().all(),
                conn.execute(sa.text("SELECT version_num FROM public.alembic_version")).scalars().all(),
                set(conn.scalars(sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))),
            )

    before = hub_state()
    assert before == (["ada"], ["hub-rev"], {"users", "alembic_version"})

    migrate.upgrade(fresh_db_url)
    assert hub_state() == before
    with engine.begin() as conn:  # some data, so the downgrade has something to drop
        add_user(conn)
        add_version(conn, add_tool(conn), 1, "active")

    migrate.downgrade(fresh_db_url)
    assert hub_state() == before
    assert schema_tables(engine) == {"alembic_version"}  # only our (empty) version table is left
    assert migrate.current(fresh_db_url) is None
    with engine.connect() as conn:
        leftovers = conn.execute(sa.text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relname NOT LIKE 'alembic_version%'"
        ), {"s": SCHEMA}).scalar_one()
        functions = conn.execute(sa.text(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :s"
        ), {"s": SCHEMA}).scalar_one()
    assert leftovers == 0  # no stray indexes or sequences either
    assert functions == 0  # nor the catalog notification triggers' functions

    migrate.upgrade(fresh_db_url)
    assert migrate.current(fresh_db_url) == "0003"
    assert hub_state() == before
    assert migrate.compare(fresh_db_url) == []


def test_upgrade_on_an_open_connection(fresh_db_url, engine):
    with engine.connect() as conn:
        migrate.upgrade(conn)
        assert migrate.current(conn) == "0003"
    assert migrate.is_up_to_date(fresh_db_url)


def test_offline_sql_script_for_dbas(capsys):
    migrate.upgrade("postgresql+psycopg://nobody@localhost/none", sql=True)  # no connection is made
    sql = capsys.readouterr().out
    assert 'CREATE SCHEMA IF NOT EXISTS "skriptoteket"' in sql
    assert "CREATE UNIQUE INDEX uq_tool_versions_one_active" in sql and "WHERE state = 'active'" in sql
    assert "INSERT INTO skriptoteket.professions" in sql and "Skoladministratör" in sql
