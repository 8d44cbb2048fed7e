"""``python -m streams.cli``: the ``secstream`` command."""

from streams.cli.main import main

# The guard matters: worker members are started with multiprocessing's "spawn", which imports this
# module again (as ``__mp_main__``) in every member, where it must not run the command.
if __name__ == "__main__":
    raise SystemExit(main())
