"""`python -m bot` is the same as the `safewell` command."""

from bot.cli import main

raise SystemExit(main())
