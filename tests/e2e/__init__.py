"""End-to-end tests: the real bot through the Bot API emulator."""
