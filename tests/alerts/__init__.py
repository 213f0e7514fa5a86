"""Tests for bot.alerts: CAP 1.2, rate limiting and rendering."""
