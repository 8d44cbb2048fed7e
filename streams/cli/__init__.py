"""The ``secstream`` command: ``main`` (subcommands), ``run`` (the embedded runner) and ``kafka`` (produce, consume)."""

from __future__ import annotations

from streams.cli.main import main

__all__ = ["main"]
