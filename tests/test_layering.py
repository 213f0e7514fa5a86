"""What import-linter cannot say: handlers use SQLAlchemy for the session type only.

(import-linter sees a third-party package as one module, so "sqlalchemy.ext.asyncio's session
type but not sqlalchemy's select" is checked here, from the source.)"""

from __future__ import annotations

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
SESSION_TYPES = {"AsyncSession", "async_sessionmaker"}


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
