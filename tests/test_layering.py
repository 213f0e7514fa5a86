"""What import-linter cannot say: handlers use SQLAlchemy for the session type only, and the
thin ones neither reach the database layer nor use the session themselves.

(import-linter sees a third-party package as one module, so "sqlalchemy.ext.asyncio's session
type but not sqlalchemy's select" is checked here, from the source; a call on the session is
not an import at all.)"""

from __future__ import annotations

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
SESSION_TYPES = {"AsyncSession", "async_sessionmaker"}

# Handlers that parse the update, call a service and render its result: they pass the session
# on but never import the repositories or the session helpers, nor query, write or commit.
THIN = (
    "alerts_staff",
    "alerts_view",
    "callbacks",
    "cases",
    "common",
    "errors",
    "fallback",
    "faq",
    "filters",
    "keyboards",
    "officers",
    "stats",
    "subscriptions",
    "triage",
)
# Still being thinned: their queries and commits move to the cases and alerts services.
NOT_YET_THIN: tuple[str, ...] = ()
DATABASE_LAYER = ("bot.db.repo", "bot.db.session")
# Session methods that query, write or end a transaction.
SESSION_WORK = {
    "add",
    "add_all",
    "commit",
    "execute",
    "flush",
    "get",
    "rollback",
    "scalar",
    "scalars",
}


def _sqlalchemy_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            names = {a.name for a in node.names}
            if node.module != "sqlalchemy.ext.asyncio" or not names <= SESSION_TYPES:
                found.append(f"from {node.module} import {', '.join(sorted(names))}")
    return found


def test_handlers_use_sqlalchemy_for_the_session_type_only() -> None:
    offenders = {
        path.name: imports
        for path in sorted(HANDLERS.glob("*.py"))
        if (imports := _sqlalchemy_imports(path))
    }
    assert offenders == {}, "queries belong in services and repositories, not handlers"


def test_the_check_sees_a_query_import(tmp_path: Path) -> None:
    handler = tmp_path / "h.py"
    handler.write_text(
        "from sqlalchemy import select\nfrom sqlalchemy.ext.asyncio import AsyncSession\n"
    )
    assert _sqlalchemy_imports(handler) == ["from sqlalchemy import select"]


def _imports_database_layer(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        modules = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
        modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    else:
        return False
    return any(m == layer or m.startswith(f"{layer}.") for m in modules for layer in DATABASE_LAYER)


def _works_on_a_session(node: ast.AST, sessions: set[str]) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SESSION_WORK
        and isinstance(node.func.value, ast.Name)
        and (node.func.value.id in sessions or "session" in node.func.value.id.lower())
    )


def _session_work(path: Path) -> list[str]:
    """Imports of the database layer, and calls such as `session.commit()` on a session (a
    name with "session" in it, or a parameter typed `AsyncSession`), by line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    sessions = {
        arg.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.arguments)
        for arg in (*node.posonlyargs, *node.args, *node.kwonlyargs)
        if arg.annotation is not None and "AsyncSession" in ast.unparse(arg.annotation)
    }
    found = []
    for node in ast.walk(tree):
        if _imports_database_layer(node):
            found.append((node.lineno, ast.unparse(node)))
        elif _works_on_a_session(node, sessions):
            assert isinstance(node, ast.Call)
            found.append((node.lineno, f"{ast.unparse(node.func)}()"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_thin_handlers_leave_queries_writes_and_commits_to_services() -> None:
    offenders = {name: found for name in THIN if (found := _session_work(HANDLERS / f"{name}.py"))}
    assert offenders == {}, "handlers call one service method: it queries, writes and commits"


def test_every_handler_module_is_listed() -> None:
    # A new handler module is checked once it is named in THIN (__init__ only orders routers).
    modules = {p.stem for p in HANDLERS.glob("*.py")} - {"__init__"}
    assert modules == set(THIN) | set(NOT_YET_THIN)


def test_the_check_sees_session_work(tmp_path: Path) -> None:
    handler = tmp_path / "h.py"
    handler.write_text(
        "from bot.db import repo\n"
        "from bot.db.session import end_reading\n"
        "import bot.db.repo\n"
        "from bot.db.models import Role\n"
        "async def h(db: AsyncSession, session: AsyncSession, faq: object) -> None:\n"
        "    await session.commit()\n"
        "    await db.get(Role, 1)\n"
        "    faq.kb.entries.get('x')\n"
        "    await citizens.choose_language(session, None, 'en')\n"
    )
    assert _session_work(handler) == [
        "line 1: from bot.db import repo",
        "line 2: from bot.db.session import end_reading",
        "line 3: import bot.db.repo",
        "line 6: session.commit()",
        "line 7: db.get()",
    ]


TESTS = Path(__file__).resolve().parent


def _imports_of_the_suite(path: Path, package: str) -> list[str]:
    """The `tests.` modules a file imports (relative imports resolved against `package`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, node.module or ""] if node.level else [node.module or ""])
            module = module.strip(".")
            # `from tests import x` and `from . import x` import the modules tests.x and ….x.
            if module == "tests" or node.module is None:
                found += [f"{module}.{a.name}" for a in node.names]
            else:
                found.append(module)
    return [m for m in found if m == "tests" or m.startswith("tests.")]


def _not_through_support(path: Path, package: str) -> list[str]:
    return [
        m
        for m in _imports_of_the_suite(path, package)
        if m != "tests.support" and not m.startswith("tests.support.")
    ]


def test_tests_share_helpers_through_tests_support_only() -> None:
    # Tests mirror the source and import no other test module or conftest: what they share
    # lives in tests/support/.
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        parts = path.relative_to(TESTS.parent).with_suffix("").parts
        package = ".".join(parts[:-1])
        if imports := _not_through_support(path, package):
            offenders[str(path.relative_to(TESTS.parent))] = imports
    assert offenders == {}, "move what tests share into tests/support and import it from there"


def test_the_check_sees_an_import_of_another_test_module(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text(
        "from tests.e2e.conftest import Harness\n"
        "import tests.alerts.test_engine\n"
        "from tests import conftest, support\n"
        "from .conftest import KNOWLEDGE\n"
        "from . import test_cap\n"
        "from tests.support.e2e import Harness\n"
        "import bot.db.repo\n"
    )
    assert _not_through_support(module, "tests.alerts") == [
        "tests.e2e.conftest",
        "tests.alerts.test_engine",
        "tests.conftest",
        "tests.alerts.conftest",
        "tests.alerts.test_cap",
    ]
