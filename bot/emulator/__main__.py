"""Run the emulator standalone: ``python -m bot.emulator [--host H] [--port P] [--no-limits]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from bot.emulator.core import DEFAULT_TOKEN, Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer


async def _serve(host: str, port: int, token: str, limits: bool) -> None:
    emulator = Emulator(EmulatorConfig(limits=Limits(enabled=limits)), token=token)
    async with EmulatorServer(emulator, host, port) as server:
        print(f"Telegram Bot API emulator listening on {server.base_url}", flush=True)
        print(f"bot token: {server.token}", flush=True)
        print(f"control API: {server.base_url}/_emulator/state", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bot.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--no-limits", action="store_true", help="switch flood limits off")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.token, not args.no_limits))


if __name__ == "__main__":
    main()
