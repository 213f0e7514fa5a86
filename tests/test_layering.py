"""What import-linter cannot say: handlers use SQLAlchemy for the session type only, and the
thin ones neither reach the database layer nor use the session themselves.

(import-linter sees a third-party package as one module, so "sqlalchemy.ext.asyncio's session
type but not sqlalchemy's select" is checked here, from the source; a call on the session is
not an import at all.)

Also: every registered handler asks only for what it is given (aiogram's names, the
middlewares', its router's, the services container's fields with their types)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiogram import Router
from aiogram.types import Message

from bot.alerts.catalog import Catalog
from bot.services import Services
from handlers import FACTORIES, setup_routers

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


# ---------------------------------------------------------------- what a handler is given by name

# aiogram hands a handler (and each filter) the event first, then whichever of its keyword
# arguments the parameters name; a parameter nothing provides fails only when an update
# reaches it. aiogram's own names (3.x): Dispatcher.feed_update (dispatcher, bot),
# Dispatcher._listen_update (event_update), Router.propagate_event (event_router),
# TelegramEventObserver.trigger (handler), UserContextMiddleware (event_context,
# event_from_user, event_chat, event_thread_id), FSMContextMiddleware (fsm_storage, state,
# raw_state), and what its filters pass on: Command (command), CallbackData.filter()
# (callback_data).
AIOGRAM_NAMES = frozenset(
    {
        "dispatcher",
        "bot",
        "event_update",
        "event_router",
        "handler",
        "event_context",
        "event_from_user",
        "event_chat",
        "event_thread_id",
        "fsm_storage",
        "state",
        "raw_state",
        "command",
        "callback_data",
    }
)
# Names one feature router gives its own handlers, as a filter's result: `case` (has_case) and
# the views (AlertsView, StaffView, ForumView, RelayView).
ROUTER_NAMES = {
    "handlers.cases": {"case", "relay"},
    "handlers.alerts_staff": {"desk"},
    "handlers.subscriptions": {"view"},
    "handlers.officers": {"forum"},
}
BOT = HANDLERS.parent / "bot"


def _middleware_names() -> set[str]:
    """What the update middlewares put into the handlers' data (`data["session"] = …` in
    bot/middlewares.py), and the keywords an update is fed with (`feed_update(…, inbox_done=…)`)."""
    names = set()
    for node in ast.walk(ast.parse((BOT / "middlewares.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign):
            names |= {
                target.slice.value
                for target in node.targets
                if isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id == "data"
                and isinstance(target.slice, ast.Constant)
                and isinstance(target.slice.value, str)
            }
    for path in BOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "feed_update"
            ):
                names |= {keyword.arg for keyword in node.keywords if keyword.arg}
    return names


def _routers(root: Router) -> Iterator[Router]:
    yield root
    for router in root.sub_routers:
        yield from _routers(router)


def _called_by_name(router: Router) -> Iterator[Callable[..., Any]]:
    """Every handler and filter of one router, as aiogram calls them."""
    for observer in router.observers.values():
        # The router's own filters (`router.message.filter(…)`): aiogram keeps them in a handler
        # object of the observer's that has no public name.
        for root_filter in observer._handler.filters or []:
            yield root_filter.callback
        for handler in observer.handlers:
            yield handler.callback
            for handler_filter in handler.filters or []:
                yield handler_filter.callback


def _type_name(annotation: object) -> str:
    return "unannotated" if annotation is None else inspect.formatannotation(annotation)


def _parameter_problems(
    callback: Callable[..., Any], given: set[str], services: dict[str, Any]
) -> list[str]:
    """Parameters after the event that nothing gives, and services annotated with another
    type than the container's field."""
    target = inspect.unwrap(callback)
    parameters = list(inspect.signature(target).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return []  # given everything (aiogram's inverted filter, `~StateFilter(None)`)
    named = [p for p in parameters if p.kind is not p.VAR_POSITIONAL][1:]  # [0]: the event
    function = target if inspect.isfunction(target) or inspect.ismethod(target) else None
    named_by = target if function is not None else type(target)
    where = f"{named_by.__module__}.{named_by.__qualname__}"
    problems = []
    for parameter in named:
        if parameter.name in services:
            hints = typing.get_type_hints(function or type(target).__call__)
            annotation, field_type = hints.get(parameter.name), services[parameter.name]
            if annotation != field_type:
                problems.append(
                    f"{where}: {parameter.name} is {_type_name(annotation)}, "
                    f"the service is {_type_name(field_type)}"
                )
        elif parameter.name not in given:
            problems.append(f"{where}: nothing gives {parameter.name}")
    return problems


def _injection_problems(root: Router) -> list[str]:
    services = typing.get_type_hints(Services)
    given = AIOGRAM_NAMES | _middleware_names()
    return [
        problem
        for router in _routers(root)
        for callback in _called_by_name(router)
        for problem in _parameter_problems(
            callback, given | ROUTER_NAMES.get(router.name or "", set()), services
        )
    ]


def test_handlers_ask_only_for_what_they_are_given() -> None:
    """Every parameter of every registered handler and filter (after the event) is aiogram's,
    a middleware's, its router's, or a field of the services container typed as the field."""
    assert {"session", "citizen", "roles", "lang", "throttled", "inbox_done"} <= _middleware_names()
    root = setup_routers()
    assert _injection_problems(root) == []
    # The walk reached every feature module's handlers.
    checked = {
        inspect.unwrap(callback).__module__
        for router in _routers(root)
        for callback in _called_by_name(router)
        if inspect.isfunction(inspect.unwrap(callback))
    }
    assert {factory.__module__ for factory in FACTORIES} <= checked


def test_the_services_are_the_workflow_data() -> None:
    # Each service itself under its field's name (`dataclasses.asdict` would give copies).
    services = {field.name: object() for field in dataclasses.fields(Services)}
    data = Services(**services).workflow_data()
    assert data.keys() == services.keys()
    assert all(data[name] is service for name, service in services.items())


async def _asks_badly(
    message: Message, catalogue: Catalog, faq: str, desk: object, lang: str
) -> None:
    """A misspelt service, a service typed as something else, a name only another router gives."""


def test_the_check_sees_a_parameter_nothing_gives() -> None:
    router = Router(name="handlers.example")
    router.message.register(_asks_badly)
    assert _injection_problems(router) == [
        f"{__name__}._asks_badly: nothing gives catalogue",
        f"{__name__}._asks_badly: faq is str, the service is bot.faq.service.FaqService",
        f"{__name__}._asks_badly: nothing gives desk",
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
