"""Detection stages: rules, sessions, stateful detectors and the Sigma stage."""

__all__: list[str] = []
