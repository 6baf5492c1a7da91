"""`python -m bot`: the same as the `stockbot` console script."""

from bot.cli import main

raise SystemExit(main())
