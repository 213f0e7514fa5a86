"""Public-safety alerts: CAP 1.2, the shared broadcast rate limiter and citizen rendering."""
