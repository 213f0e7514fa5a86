"""The `safewell` command (also `python -m bot`): run, migrate, staff, and the content tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from bot.config import ConfigError, Settings, load_settings
from bot.db.models import Role
from bot.logs import formatter

log = logging.getLogger("safewell")


class RedactingFilter(logging.Filter):
    """Replaces secrets in every log record, whatever library logged it."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "[REDACTED]")
            record.msg, record.args = message, None
        return True


def setup_logging(settings: Settings, level: str) -> None:
    """Logs on stderr (plain, or JSON with `LOG_FORMAT=json`), secrets redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings.log.format))
    secrets = [
        s.get_secret_value()
        for s in (settings.bot.token, settings.webhook.secret, settings.alerts.api_token)
        if s is not None
    ]
    handler.addFilter(RedactingFilter(secrets))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if level.upper() != "DEBUG":
        # alembic announces every plugin at INFO; only its revisions are worth reading.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run

    settings.require_token()
    asyncio.run(run(settings))
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db.migrate import downgrade, upgrade

    if args.downgrade:
        downgrade(settings.database.url, args.revision or "base")
    else:
        upgrade(settings.database.url, args.revision or "head")
    print(f"database at {args.revision or ('base' if args.downgrade else 'head')}")
    return 0


async def _staff(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import repo
    from bot.db.migrate import upgrade_async
    from bot.db.session import create_engine, create_sessionmaker

    await upgrade_async(settings.database.url)
    engine = create_engine(settings.database.url)
    try:
        async with create_sessionmaker(engine)() as session:
            if args.staff_cmd == "list":
                rows = await repo.list_staff(session, Role(args.role) if args.role else None)
                if not rows:
                    print("no staff members")
                for row in rows:
                    duty = " on duty" if row.on_duty else ""
                    name = f" ({row.display_name})" if row.display_name else ""
                    print(f"{row.user_id}\t{row.role}{name}{duty}")
                return 0
            if args.staff_cmd == "add":
                role = Role(args.role)
                added = await repo.add_role(session, args.user_id, role, display_name=args.name)
                repo.audit(
                    session,
                    "staff.add",
                    actor_id=None,
                    target_type="user",
                    target_id=args.user_id,
                    role=role.value,
                    via="cli",
                )
                await session.commit()
                print(f"{args.user_id} {'is now' if added else 'already was'} {role.value}")
                return 0
            role_or_none = Role(args.role) if args.role else None
            removed = await repo.remove_role(session, args.user_id, role_or_none)
            repo.audit(
                session,
                "staff.remove",
                actor_id=None,
                target_type="user",
                target_id=args.user_id,
                role=args.role or "all",
                via="cli",
            )
            await session.commit()
            if not removed:
                print(f"{args.user_id} had no such role", file=sys.stderr)
                return 1
            print(f"removed {removed} role(s) from {args.user_id}")
            return 0
    finally:
        await engine.dispose()


def _cmd_staff(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_staff(args, settings))


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.demo import DemoOptions, run_demo

    options = DemoOptions(
        host=args.host,
        port=args.port,
        emulator_port=args.emulator_port,
        database_url=args.database,
        env_file=args.env_file,
        limits=not args.no_limits,
    )
    asyncio.run(run_demo(options))
    return 0


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a Telegram user id") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("a Telegram user id is a positive number")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="safewell", description=__doc__)
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="migrate, then run the bot (polling, or webhook if set)")
    p.set_defaults(func=_cmd_run, migration_log=True)

    p = sub.add_parser("migrate", help="upgrade the database schema")
    p.add_argument("revision", nargs="?", help="target revision (default: head)")
    p.add_argument("--downgrade", action="store_true", help="downgrade instead (default: base)")
    p.set_defaults(func=_cmd_migrate, migration_log=True, uses_knowledge=False)

    p = sub.add_parser(
        "demo", help="try the bot in a browser: emulated Telegram, sample people, no token"
    )
    p.add_argument("--port", type=int, default=8088, help="page port (default 8088; 0: free)")
    p.add_argument("--host", default="127.0.0.1", help="page address (default 127.0.0.1)")
    p.add_argument("--emulator-port", type=int, default=0, help="emulator port (default: free)")
    p.add_argument("--database", help="database URL (default: a fresh temporary SQLite file)")
    p.add_argument("--no-limits", action="store_true", help="switch Telegram's flood limits off")
    p.set_defaults(func=_cmd_demo)

    staff = sub.add_parser("staff", help="manage officers, communications staff and admins")
    staff_sub = staff.add_subparsers(dest="staff_cmd", required=True, metavar="ACTION")
    roles = [r.value for r in Role]
    p = staff_sub.add_parser("add", help="grant a role to a Telegram user id")
    p.add_argument("user_id", type=_positive_int)
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--name", help="display name shown to colleagues")
    p = staff_sub.add_parser("remove", help="revoke one role (or all)")
    p.add_argument("user_id", type=_positive_int)
    p.add_argument("--role", choices=roles)
    p = staff_sub.add_parser("list", help="list staff members")
    p.add_argument("--role", choices=roles)
    staff.set_defaults(func=_cmd_staff, uses_knowledge=False)

    from bot.alerts.cli import add_commands as add_alert_commands
    from bot.audit_cli import add_commands as add_audit_commands
    from bot.backup_cli import add_commands as add_backup_commands
    from bot.cases.cli import add_commands as add_cases_commands
    from bot.faq.cli import add_commands as add_knowledge_commands
    from bot.stats.report import add_commands as add_report_commands
    from bot.triage.cli import add_commands as add_triage_commands

    add_knowledge_commands(sub)
    add_alert_commands(sub)
    add_triage_commands(sub)
    add_cases_commands(sub)
    add_audit_commands(sub)
    add_backup_commands(sub)
    add_report_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for configuration errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        settings = load_settings(env_file=args.env_file)
        setup_logging(settings, args.log_level)
        if not getattr(args, "migration_log", False) and args.log_level.upper() != "DEBUG":
            # A tool's output is its answer: the schema upgrade it may do first is not news.
            logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
        knowledge = settings.faq.knowledge_dir
        if getattr(args, "uses_knowledge", True) and not knowledge.is_dir():
            raise ConfigError(
                f"FAQ_KNOWLEDGE_DIR: no knowledge folder at {knowledge.resolve()}; run safewell "
                "from the project folder, or set FAQ_KNOWLEDGE_DIR to the project's knowledge/"
            )
        return func(args, settings)
    except ConfigError as exc:
        print(f"safewell: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
