"""Safewell's test suite."""
