"""Detection stages: rules, sessions, stateful detectors and the Sigma stage."""
