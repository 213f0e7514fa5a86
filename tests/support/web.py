"""An aiohttp application served on a loopback port for the length of a test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int = 0, **runner: Any) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (a free port unless one is given) until the block ends; its
    base URL. `runner` goes to `web.AppRunner` (e.g. shutdown_timeout)."""
    app_runner = web.AppRunner(app, **runner)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{app_runner.addresses[0][1]}"
    finally:
        await app_runner.cleanup()
