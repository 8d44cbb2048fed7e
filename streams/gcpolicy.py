"""The garbage-collector policy of the long-running commands (``secstream run`` and ``secstream worker``).

Event documents, records and process nodes hold no reference cycles: reference counting frees them.
Yet with CPython's default thresholds (a young collection every 700 allocations) the collector keeps
rescanning the thousand-odd documents of a batch in flight and, as they age, the long-lived host state,
for nothing: about a fifth of the embedded runner's CPU time on ``bench/bench_pipeline.py``. The
policy moves everything alive at start-up (modules, configuration, compiled rules) out of the
collector's view and collects the young generation a hundred times less often. Cycles are still
collected, only later; memory is unaffected because nothing on the hot path is cyclic.

It is process-wide, so only the commands apply it, never the library.
"""

from __future__ import annotations

import gc

__all__ = ["apply_streaming_gc_policy"]

_THRESHOLDS = (70_000, 50, 1_000)


def apply_streaming_gc_policy() -> None:
    """Freeze what is alive now and raise the collection thresholds (call once, after start-up)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)
