"""Local Telegram Bot API emulator: real HTTP, Telegram's errors and limits, a control API."""

from bot.emulator.client import EmulatorClient, EmulatorClientError
from bot.emulator.core import DEFAULT_TOKEN, Emulator, EmulatorConfig
from bot.emulator.faults import Fault
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer, create_app, start

__all__ = [
    "DEFAULT_TOKEN",
    "Emulator",
    "EmulatorClient",
    "EmulatorClientError",
    "EmulatorConfig",
    "EmulatorServer",
    "Fault",
    "Limits",
    "create_app",
    "start",
]
