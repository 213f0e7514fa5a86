"""A Bot API emulator process for the alert benchmarks, with N citizens who started the bot.

    python -m benchmarks.alerts_emulator --users 100000 --first-id 1000000 --port 8081 [--no-limits]

Creating 100,000 private chats over the control API would take longer than the broadcast, so
this process builds them directly, then serves the ordinary emulator. It also counts successful
sendMessage calls per chat (GET /_bench/counts -> {"total": n, "histogram": {copies: chats}})
so the crash benchmark can tell who got 0, 1 or 2+ copies.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
from typing import Any

from aiohttp import web

from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import create_app


def build(users: int, first_id: int, limits: bool) -> tuple[Emulator, collections.Counter[int]]:
    """The emulator with its citizens, and the per-chat counter of delivered messages."""
    emulator = Emulator(EmulatorConfig(limits=Limits(enabled=limits), max_log=1000))
    for uid in range(first_id, first_id + users):
        emulator.create_user(uid, first_name="C", language_code="en")
        emulator.private_chat(uid)
    counts: collections.Counter[int] = collections.Counter()
    send = emulator._methods["sendmessage"]

    async def counting(state: Any, params: Any) -> Any:
        result = await send(state, params)
        counts[int(result["chat"]["id"])] += 1
        return result

    emulator._methods["sendmessage"] = counting
    return emulator, counts


async def serve(args: argparse.Namespace) -> None:
    emulator, counts = build(args.users, args.first_id, not args.no_limits)

    async def bench_counts(_request: web.Request) -> web.Response:
        histogram = collections.Counter(counts.values())
        histogram[0] = args.users - len(counts)
        return web.json_response(
            {
                "total": sum(counts.values()),
                "histogram": {str(k): v for k, v in sorted(histogram.items())},
                "rate_limited": emulator.stats.get("rate_limited", 0),
                "stats": {k: v for k, v in emulator.stats.items() if isinstance(v, int)},
            }
        )

    app = create_app(emulator)
    app.router.add_get("/_bench/counts", bench_counts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print(f"ready http://127.0.0.1:{args.port} token={emulator.default_token}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    """Parse arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--first-id", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--no-limits", action="store_true")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
