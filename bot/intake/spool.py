"""The local spool: updates kept on disk while the database is away."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


class Spool:
    """Updates kept on local disk while the database is away: one JSON line each, fsynced.

    Each process appends to a file of its own and holds an exclusive lock on it while it
    lives; a file nobody holds belongs to a dead process, and any process drains it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}-{time.time_ns()}.jsonl"
        self._file: IO[str] | None = None
        self._lock = asyncio.Lock()

    def _write(self, lines: list[str]) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a+", encoding="utf-8")
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        self._file.write("".join(line + "\n" for line in lines))
        self._file.flush()
        os.fsync(self._file.fileno())

    async def keep(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records durably (raises OSError when the disk refuses too)."""
        lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
        async with self._lock:
            await asyncio.to_thread(self._write, lines)

    @property
    def has_own(self) -> bool:
        return self._file is not None and self.path.exists() and self.path.stat().st_size > 0

    def _foreign(self) -> list[tuple[Path, IO[str]]]:
        """Files left by dead processes, each locked for draining."""
        found: list[tuple[Path, IO[str]]] = []
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.jsonl")):
            if path == self.path:
                continue
            handle = path.open("r+", encoding="utf-8")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its process is alive and keeps it
                handle.close()
                continue
            found.append((path, handle))
        return found

    async def drain(self, apply: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> int:
        """Hand every spooled record to `apply` (which stores them), then forget them."""
        drained = 0
        async with self._lock:
            files = self._foreign()
            if self.has_own:
                assert self._file is not None
                files.append((self.path, self._file))
            for path, handle in files:
                handle.seek(0)
                records = []
                for line in handle.read().splitlines():
                    with contextlib.suppress(ValueError):  # a line cut by a crash mid-write
                        records.append(json.loads(line))
                await apply(records)
                drained += len(records)
                if handle is self._file:
                    handle.seek(0)
                    handle.truncate()
                else:
                    path.unlink()
                    handle.close()
                log.warning("drained %d spooled update record(s) from %s", len(records), path)
        return drained

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            with contextlib.suppress(OSError):
                if self.path.stat().st_size == 0:
                    self.path.unlink()
