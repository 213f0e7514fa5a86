"""Tests for urgent-message triage."""
