"""The detection stages that run on every event after enrichment.

* :mod:`processors.detect.sessions`: logon and sudo sessions per host (annotates events, emits summaries);
* :mod:`processors.detect.rules`: pattern rules over event fields (the shipped rules are package data in
  ``data/``);
* :mod:`processors.detect.detectors`: stateful detectors (command bursts, risky sudo sessions);
* :mod:`processors.detect.sigma`: Sigma rules and correlations (the project's pack is in ``data/sigma``).
"""

__all__: list[str] = []
