"""The ``skriptoteket`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error

from .launcher import Platform


def cmd_up(args) -> int:
    return Platform().up(admin=args.admin)


def cmd_db(args) -> int:
    from . import migrate

    platform = Platform()
    if platform.uses_embedded_postgres():
        platform.ensure_secrets()
        platform.start_postgres()
    url = platform.service_db_url()
    if args.action == "upgrade":
        migrate.upgrade(url, args.revision or "head")
    elif args.action == "downgrade":
        migrate.downgrade(url, args.revision or "base")
    else:
        print(migrate.current(url))
    return 0


def cmd_create_user(args) -> int:
    from .accounts import HubAPI, generate_password, set_credentials

    platform = Platform()
    password = args.password or generate_password()
    set_credentials(platform.hub_db_url(), args.name, password)
    api = HubAPI(args.hub_api or platform.hub_api_url(), platform.secret("cli_token"))
    try:
        api.ensure_user(args.name)
        api.set_groups(args.name, args.group)
    except (urllib.error.URLError, OSError) as err:
        print(f"Could not reach the hub at {api.api_url} ({err}). Is the platform running?", file=sys.stderr)
        return 1
    print(f"User {args.name!r} is ready" + (f" (groups: {', '.join(args.group)})" if args.group else "") + ".")
    if not args.password:
        print(f"Password: {password}")
    return 0


def cmd_check(args) -> int:
    from . import check

    return check.main(args.paths, as_json=args.json, pool_size=args.jobs, tests=not args.no_tests)


def cmd_seed(args) -> int:
    from . import seed

    return seed.seed(profile=args.profile, dry_run=args.dry_run, publish=args.publish, force=args.force)


# ---- operations: retention, backup, restore (docs/operations.md) ------------------------------------------


class _OpsDatabase:
    """The platform's databases for an operations command: the embedded Postgres is started if it is not
    running (and stopped again afterwards), an external one is used as configured."""

    def __init__(self) -> None:
        self.platform = Platform()
        self.started = False

    def __enter__(self) -> Platform:
        if self.platform.uses_embedded_postgres() and not self.platform.postgres.is_running():
            self.platform.ensure_secrets()
            self.platform.start_postgres()
            self.started = True
        return self.platform

    def __exit__(self, *exc) -> None:
        if self.started:
            self.platform.postgres.stop()


def _service_config(platform: Platform):
    from .retention_service import Retention

    app = Retention(config_file=str(platform.home / "skriptoteket_config.py"))
    if os.path.exists(app.config_file):
        app.load_config_file(app.config_file)
    if not app.config.get("SkriptoteketService", {}).get("blob_dir"):
        app.blob_dir = str(platform.home / "blobs")
    return app


def cmd_retention(args) -> int:
    import json

    with _OpsDatabase() as platform:
        app = _service_config(platform)
        app.db_url = platform.service_db_url()
        results = app.run_once(dry_run=args.dry_run)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        verb = "would remove" if args.dry_run else "removed"
        for r in results:
            print(f"{r['job']:>14}: {verb} {r['count']} ({r['bytes']} bytes)")
    return 0


def cmd_backup(args) -> int:
    from . import backup

    with _OpsDatabase() as platform:
        app = _service_config(platform)
        try:
            manifest = backup.backup(args.path, service_db_url=platform.service_db_url(), blob_dir=app.blob_dir,
                                     hub_db_url=None if args.no_hub else platform.hub_db_url())
        except backup.BackupError as err:
            print(f"Backup failed: {err}", file=sys.stderr)
            return 1
    print(f"Backup written to {args.path}: {manifest['blob_files']} blob files, schema {manifest['schema_revision']}, "
          f"hub database {'included' if manifest['hub_database'] else 'not included'} ({manifest['seconds']} s).")
    return 0


def _hub_is_up(platform: Platform) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(platform.bind_url.rstrip("/") + "/hub/health", timeout=2):
            return True
    except OSError:
        return False


def cmd_restore(args) -> int:
    from . import backup

    with _OpsDatabase() as platform:
        if not args.force and _hub_is_up(platform):
            print("The platform is running: stop it first (Ctrl-C on `skriptoteket up`), or pass --force.",
                  file=sys.stderr)
            return 1
        app = _service_config(platform)
        try:
            result = backup.restore(args.path, service_db_url=platform.service_db_url(), blob_dir=app.blob_dir,
                                    hub_db_url=None if args.no_hub else platform.hub_db_url())
        except (backup.BackupError, OSError, ValueError) as err:
            print(f"Restore failed: {err}", file=sys.stderr)
            return 1
    print(f"Restored the backup of {result['created_at']}: service schema, {result['restored_blob_files']} blob files, "
          f"hub database {'restored' if result['restored_hub_database'] else 'not restored'} "
          f"({result['restore_seconds']} s).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skriptoteket", description="Skriptoteket: school tools on JupyterHub")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the platform on its embedded default (Postgres, hub, service)")
    up.add_argument("--admin", default="admin", help="name of the bootstrap admin (default: admin)")
    up.set_defaults(func=cmd_up)

    db = sub.add_parser("db", help="database migrations of the service's schema")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?")
    db.set_defaults(func=cmd_db)

    user = sub.add_parser("create-user", help="create or update an approved local account (the hub must be running)")
    user.add_argument("name")
    user.add_argument("--group", action="append", default=[], choices=["authors", "reviewers", "admins"],
                      help="add the user to this group (repeatable)")
    user.add_argument("--password", help="the password (default: generate one and print it)")
    user.add_argument("--hub-api", help="the hub's API URL (default: from SKRIPTOTEKET_BIND_URL)")
    user.set_defaults(func=cmd_create_user)

    check = sub.add_parser("check", help="check authoring notebooks headless: schemas, sample runs, skr-test cells")
    check.add_argument("paths", nargs="+", metavar="NOTEBOOK_OR_DIR")
    check.add_argument("--json", action="store_true", help="print the problems as JSON")
    check.add_argument("--jobs", type=int, default=2, help="sample runs at a time (warm kernels; default 2)")
    check.add_argument("--no-tests", action="store_true", help="skip the skr-test cells")
    check.set_defaults(func=cmd_check)

    seed = sub.add_parser("seed", help="put the example tool bank into the running platform (idempotent)")
    seed.add_argument("--profile", choices=["dev", "prod"], default="dev",
                      help="dev: every bank tool; prod: the curated ones only (default: dev)")
    seed.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")
    seed.add_argument("--publish", action="store_true", help="also publish the tools (make them visible in the catalog)")
    seed.add_argument("--force", action="store_true",
                      help="also overwrite bank tools that someone changed or has a pending version of")
    seed.set_defaults(func=cmd_seed)
    retention = sub.add_parser("retention", help="run the retention jobs once (artifacts, session files, snapshots, ...)")
    retention.add_argument("--dry-run", action="store_true", help="say what would be removed and remove nothing")
    retention.add_argument("--json", action="store_true", help="print the result as JSON")
    retention.set_defaults(func=cmd_retention)

    backup = sub.add_parser("backup", help="back up the service's schema, the blob store and the hub database")
    backup.add_argument("path", help="a new (or empty) directory for the backup")
    backup.add_argument("--no-hub", action="store_true", help="leave out the hub's database (users, groups, passwords)")
    backup.set_defaults(func=cmd_backup)

    restore = sub.add_parser("restore", help="restore a backup (stop the platform first)")
    restore.add_argument("path", help="a directory written by `skriptoteket backup`")
    restore.add_argument("--no-hub", action="store_true", help="leave the hub's database as it is")
    restore.add_argument("--force", action="store_true", help="restore even though the hub answers")
    restore.set_defaults(func=cmd_restore)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
