"""Tests of the local Telegram Bot API emulator, driven by a real aiogram Bot."""
