"""Alembic migrations, one revision per schema change, each with a downgrade."""
