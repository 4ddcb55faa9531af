"""The ``skriptoteket`` command line."""

from __future__ import annotations

import argparse
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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
