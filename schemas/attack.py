"""MITRE ATT&CK ids → ECS ``threat.*`` fields of an alert (tactics, techniques, sub-techniques).

Elastic Security reads an alert's ATT&CK mapping from ``threat.tactic.*``, ``threat.technique.*`` and
``threat.technique.subtechnique.*`` (ids, names and reference URLs). Rules name techniques by id only
(``T1059.004``); the names and tactics of the techniques secstream's own rules and detectors use are
listed here, and any other id still gets its id, its reference URL and its parent technique.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["TACTICS", "TECHNIQUES", "threat_fields"]

TACTICS: Final = {
    "TA0043": "Reconnaissance",
    "TA0042": "Resource Development",
    "TA0001": "Initial Access",
    "TA0002": "Execution",
    "TA0003": "Persistence",
    "TA0004": "Privilege Escalation",
    "TA0005": "Defense Evasion",
    "TA0006": "Credential Access",
    "TA0007": "Discovery",
    "TA0008": "Lateral Movement",
    "TA0009": "Collection",
    "TA0011": "Command and Control",
    "TA0010": "Exfiltration",
    "TA0040": "Impact",
}

# technique or sub-technique id → (name, tactic ids); a sub-technique's tactics are its parent's.
TECHNIQUES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "T1053": ("Scheduled Task/Job", ("TA0002", "TA0003", "TA0004")),
    "T1053.003": ("Cron", ()),
    "T1059": ("Command and Scripting Interpreter", ("TA0002",)),
    "T1059.004": ("Unix Shell", ()),
    "T1059.006": ("Python", ()),
    "T1070": ("Indicator Removal", ("TA0005",)),
    "T1070.002": ("Clear Linux or Mac System Logs", ()),
    "T1070.003": ("Clear Command History", ()),
    "T1095": ("Non-Application Layer Protocol", ("TA0011",)),
    "T1098": ("Account Manipulation", ("TA0003", "TA0004")),
    "T1098.004": ("SSH Authorized Keys", ()),
    "T1105": ("Ingress Tool Transfer", ("TA0011",)),
    "T1136": ("Create Account", ("TA0003",)),
    "T1136.001": ("Local Account", ()),
    "T1140": ("Deobfuscate/Decode Files or Information", ("TA0005",)),
    "T1499": ("Endpoint Denial of Service", ("TA0040",)),
    "T1499.001": ("OS Exhaustion Flood", ()),
    "T1548": ("Abuse Elevation Control Mechanism", ("TA0004", "TA0005")),
    "T1548.003": ("Sudo and Sudo Caching", ()),
}

_ID: Final = re.compile(r"(T[0-9]{4})(?:\.([0-9]{3}))?")
_BASE: Final = "https://attack.mitre.org"


def _append(target: dict[str, list[str]], ident: str, name: str, reference: str) -> None:
    if ident not in target["id"]:
        target["id"].append(ident)
        target["name"].append(name)
        target["reference"].append(reference)


def threat_fields(technique_ids: Iterable[str]) -> dict[str, Any]:
    """The ECS ``threat`` object of an alert mapped to ``technique_ids`` (``T1059``, ``T1059.004``).

    A sub-technique goes to ``threat.technique.subtechnique.*`` and its parent to ``threat.technique.*``;
    tactics come from the table (none for an id it does not know); an unknown id is its own name.
    ``threat.tactic`` and ``threat.technique.subtechnique`` are left out when empty.
    """
    tactic: dict[str, list[str]] = {"id": [], "name": [], "reference": []}
    technique: dict[str, list[str]] = {"id": [], "name": [], "reference": []}
    sub: dict[str, list[str]] = {"id": [], "name": [], "reference": []}
    for given in technique_ids:
        found = _ID.fullmatch(given)
        if found is None:
            continue
        parent, number = found.group(1), found.group(2)
        name, tactics = TECHNIQUES.get(parent, (parent, ()))
        _append(technique, parent, name, f"{_BASE}/techniques/{parent}/")
        if number is not None:
            _append(sub, given, TECHNIQUES.get(given, (given, ()))[0], f"{_BASE}/techniques/{parent}/{number}/")
        for tactic_id in tactics:
            _append(tactic, tactic_id, TACTICS[tactic_id], f"{_BASE}/tactics/{tactic_id}/")
    threat: dict[str, Any] = {"framework": "MITRE ATT&CK"}
    if tactic["id"]:
        threat["tactic"] = tactic
    threat["technique"] = {**technique, "subtechnique": sub} if sub["id"] else technique
    return threat
