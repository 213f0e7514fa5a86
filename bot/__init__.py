"""Safewell: a Telegram bot for a public-security bureau."""
