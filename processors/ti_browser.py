"""A browser for threat-intel results that works in notebooks (HTML) and terminals (rich tables).

msticpy's ``TILookup.browse`` returns an ipywidgets ``SelectItem``; secstream returns a
:class:`TIResultsBrowser`, which renders itself as HTML in a notebook (``_repr_html_``) and as a rich
table in a terminal, and lets code pick an observable's details with :meth:`TIResultsBrowser.details`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import orjson
import polars as pl
from rich.table import Table

__all__ = ["TIResultsBrowser"]

_DEFAULT_SEVERITIES = ("warning", "high")
_SUMMARY_COLUMNS = ("Ioc", "IocType", "Provider", "Severity", "Result")


def _severity_name(value: Any) -> str:
    names = {-1: "unknown", 0: "information", 1: "warning", 2: "high"}
    if isinstance(value, int):
        return names.get(value, "unknown")
    return str(value).lower()


class TIResultsBrowser:
    """TI results grouped by observable, filtered by severity.

    Args:
        data: results as returned by ``TILookup.lookup_iocs`` (polars or pandas).
        severities: the severities to show (default ``["warning", "high"]``).
    """

    def __init__(self, data: Any, severities: Iterable[str] | None = None) -> None:
        frame = data if isinstance(data, pl.DataFrame) else pl.from_pandas(data)
        wanted = {s.lower() for s in (severities or _DEFAULT_SEVERITIES)}
        names = [_severity_name(v) for v in frame["Severity"].to_list()] if "Severity" in frame.columns else []
        self.data = frame.with_columns(pl.Series("SeverityName", names, dtype=pl.String)).filter(
            pl.col("SeverityName").is_in(sorted(wanted))
        )

    @property
    def observables(self) -> list[str]:
        """The observables shown, in order of first appearance."""
        return list(dict.fromkeys(self.data["Ioc"].to_list()))

    def details(self, observable: str) -> pl.DataFrame:
        """All provider results for one observable."""
        return self.data.filter(pl.col("Ioc") == observable)

    def _rows(self) -> list[list[str]]:
        columns = [c for c in _SUMMARY_COLUMNS if c in self.data.columns]
        rows = []
        for row in self.data.select(columns).iter_rows():
            rows.append(["" if v is None else str(v) for v in row])
        return rows

    def __len__(self) -> int:
        return self.data.height

    def __rich__(self) -> Table:
        table = Table(title=f"TI results ({len(self.observables)} observables)")
        for column in _SUMMARY_COLUMNS:
            if column in self.data.columns:
                table.add_column(column)
        for row in self._rows():
            table.add_row(*row)
        return table

    def _repr_html_(self) -> str:
        columns = [c for c in _SUMMARY_COLUMNS if c in self.data.columns]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = []
        for row, details in zip(self._rows(), self.data.iter_rows(named=True), strict=True):
            cells = "".join(f"<td>{html.escape(v)}</td>" for v in row)
            raw = details.get("Details")
            text = raw if isinstance(raw, str) else orjson.dumps(raw, default=str).decode()
            body.append(f"<tr title='{html.escape(text, quote=True)}'>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=None, force_terminal=False)
        with console.capture() as capture:
            console.print(self.__rich__())
        return capture.get()
