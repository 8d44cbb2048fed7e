"""``python -m streams.cli``: the ``secstream`` command."""

from streams.cli.main import main

raise SystemExit(main())
