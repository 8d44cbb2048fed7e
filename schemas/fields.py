"""The output contract: every field secstream writes into events, alerts and dead letters.

This table is the one source of truth for the documents' names and types. ``python -m schemas.generate``
writes the three JSON Schemas (``events``, ``detections``, ``deadletter``) and the Elasticsearch and
OpenSearch index templates from it, and the conformance test checks every name against ECS's own definitions.

A field is one of three kinds, by its name:

* ECS (``ecs.version``, ``process.pid``, ``threat.technique.subtechnique.id``...): ECS's name, with ECS's
  type and allowed values (secstream claims :data:`ECS_VERSION`);
* ``auditd.*``: Auditbeat's namespace, used on purpose so that a data view over Auditbeat and secstream
  data sees one mapping: ``auditd.sequence`` is a ``long``, ``auditd.session`` and every ``auditd.data.*``
  a ``keyword`` (strings, as Auditbeat writes them), ``auditd.paths`` a list of objects of keywords;
* ``secstream.*``: secstream's own namespace, for everything ECS and Auditbeat do not define.

A field marked ``legacy`` is still written by a stage whose rewrite is pending; it is in the JSON Schemas
(the documents of today must validate) but not in the index template, and the conformance test reports it.
Its text says what replaces it. Remove the entry when the stage stops writing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "CONTRACT_VERSION",
    "ECS_VERSION",
    "FIELDS",
    "ISO_DATE_PATTERN",
    "OUTPUTS",
    "Field",
    "fields_for",
    "namespace_of",
]

CONTRACT_VERSION: Final = "2.0"
"""secstream's output contract version (``secstream.schema_version``): the major changes when a field is
renamed or removed or changes type, the minor when fields are added."""

ECS_VERSION: Final = "9.0.0"
"""The ECS version the documents claim (``ecs.version``)."""

OUTPUTS: Final = ("events", "detections", "deadletter")

E, D, L = frozenset({"events"}), frozenset({"detections"}), frozenset({"deadletter"})
ED = E | D
ALL = E | D | L

# ECS's event categorization values (ECS 9: event.kind, event.category, event.type, event.outcome).
EVENT_CATEGORIES: Final = (
    "api", "authentication", "configuration", "database", "driver", "email", "file", "host", "iam",
    "intrusion_detection", "library", "malware", "network", "package", "process", "registry", "session",
    "threat", "vulnerability", "web",
)  # fmt: skip
EVENT_TYPES: Final = (
    "access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "device", "end",
    "error", "group", "indicator", "info", "installation", "protocol", "start", "user",
)  # fmt: skip
EVENT_OUTCOMES: Final = ("failure", "success", "unknown")
INDICATOR_TYPES: Final = (
    "autonomous-system", "artifact", "directory", "domain-name", "email-addr", "file", "ipv4-addr",
    "ipv6-addr", "mac-addr", "mutex", "port", "process", "software", "url", "user-account",
    "windows-registry-key", "x509-certificate",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the output documents.

    Args:
        name: the dotted name (``process.parent.pid``); the fields of a list of objects are named through it
            (``threat.enrichments.indicator.type``).
        type: the Elasticsearch/ECS type: ``keyword``, ``wildcard``, ``match_only_text``, ``long``,
            ``float``, ``boolean``, ``date``, ``ip``, ``geo_point``, ``flattened``, ``object`` (a JSON object,
            with fields of its own in this table) or ``nested`` (a list of objects queried one by one).
        outputs: the output streams it appears in.
        description: what it holds.
        values: the allowed values, for every output (``values_in`` overrides per output).
        values_in: allowed values per output.
        array: the value is a JSON list (of values, or of objects for ``object``/``nested``).
        required: the outputs where every document has it.
        nullable: JSON ``null`` is a value it can take (Elasticsearch indexes it as missing).
        pattern: a regular expression every (string) value matches (dates: :data:`ISO_DATE_PATTERN`).
        minimum: the smallest value (numbers).
        maximum: the largest value (numbers).
        text: Elasticsearch also indexes it as ``<name>.text`` (``match_only_text``), as ECS does.
        open_values: for an ``object``: what the keys it does not list hold: ``keyword`` (a string or a list
            of strings), ``string_array`` (a list of strings) or ``any``; "" for a closed object.
        index: False for a field Elasticsearch stores but does not index (``event.original``); an ``object``
            that is not indexed holds any JSON value.
        legacy: non-empty for a field still written while a pending rewrite replaces it: what replaces it.
    """

    name: str
    type: str
    outputs: frozenset[str]
    description: str
    values: tuple[str, ...] = ()
    values_in: tuple[tuple[str, tuple[str, ...]], ...] = ()
    array: bool = False
    required: frozenset[str] = frozenset()
    nullable: bool = False
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    text: bool = False
    open_values: str = ""
    index: bool = True
    legacy: str = ""
    parts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.name.split(".")))

    def allowed(self, output: str) -> tuple[str, ...]:
        """The allowed values of the field in ``output`` (empty: any)."""
        for name, values in self.values_in:
            if name == output:
                return values
        return self.values


def namespace_of(name: str) -> str:
    """``secstream``, ``auditd`` (Auditbeat's) or ``ecs``: who defines the field ``name``."""
    head = name.split(".", 1)[0]
    return head if head in ("secstream", "auditd") else "ecs"


ISO_DATE_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
"""What every ``date`` value matches: ISO 8601 with a time zone (secstream writes ``...T08:00:01.000Z``)."""
_HEX32: Final = r"^[0-9a-f]{32}$"
_ATTACK_TECHNIQUE: Final = r"^T\d{4}$"
_ATTACK_SUBTECHNIQUE: Final = r"^T\d{4}\.\d{3}$"
_ATTACK_TACTIC: Final = r"^TA\d{4}$"


def _f(name: str, type_: str, outputs: frozenset[str], description: str, **options: object) -> Field:
    return Field(name, type_, outputs, description, **options)  # type: ignore[arg-type]


def _process_entity(prefix: str, outputs: frozenset[str], what: str) -> list[Field]:
    """The fields secstream writes about a process related to the event's (parent, leaders, ancestors)."""
    return [
        _f(f"{prefix}.pid", "long", outputs, f"Process id of {what}.", nullable=True),
        _f(f"{prefix}.entity_id", "keyword", outputs, f"secstream's unique id of {what}."),
        _f(f"{prefix}.executable", "keyword", outputs, f"Absolute path of {what}'s executable.", nullable=True,
           text=True),
        _f(f"{prefix}.name", "keyword", outputs, f"Name of {what}.", nullable=True, text=True),
        _f(f"{prefix}.command_line", "wildcard", outputs, f"Full command line of {what}.", nullable=True,
           text=True),
        _f(f"{prefix}.start", "date", outputs, f"When {what} started.", nullable=True),
    ]  # fmt: skip


def _geo(prefix: str) -> list[Field]:
    return [
        _f(f"{prefix}.geo.city_name", "keyword", E, "City (GeoIP)."),
        _f(f"{prefix}.geo.country_iso_code", "keyword", E, "Country ISO code (GeoIP)."),
        _f(f"{prefix}.geo.country_name", "keyword", E, "Country name (GeoIP)."),
        _f(f"{prefix}.geo.region_iso_code", "keyword", E, "Region ISO code (GeoIP)."),
        _f(f"{prefix}.geo.region_name", "keyword", E, "Region name (GeoIP)."),
        _f(f"{prefix}.geo.location", "geo_point", E, "Longitude and latitude (GeoIP)."),
        _f(f"{prefix}.as.number", "long", E, "Autonomous system number (GeoIP)."),
        _f(f"{prefix}.as.organization.name", "keyword", E, "Autonomous system organization (GeoIP).", text=True),
    ]


def _endpoint(prefix: str, what: str) -> list[Field]:
    return [
        _f(f"{prefix}.ip", "ip", ED, f"IP address of the {what}.", nullable=True),
        _f(f"{prefix}.port", "long", ED, f"Port of the {what}.", nullable=True),
        _f(f"{prefix}.address", "keyword", ED, f"Address of the {what} as the log gave it (IP or name)."),
        _f(f"{prefix}.domain", "keyword", ED, f"Host name of the {what}."),
        *_geo(prefix),
    ]


_AUDIT_PENDING = "processors/audit/decode.py and its Rust mirror (audit decoding rewrite)"

_SYSLOG_DETAILS: Final = (
    ("service", "keyword", "The PAM service or program the record is about (sshd, sudo, su, cron...)."),
    ("method", "keyword", "sshd's authentication method (password, publickey...)."),
    ("key_type", "keyword", "sshd's public key type."),
    ("key_fingerprint", "keyword", "sshd's public key fingerprint."),
    ("invalid_user", "boolean", "sshd said the user does not exist."),
    ("session_user", "keyword", "The user a PAM session was opened or closed for."),
    ("by_uid", "keyword", "The uid that opened a PAM session."),
    ("tty", "keyword", "The terminal (sudo, su, PAM)."),
    ("ruser", "keyword", "PAM's remote user."),
    ("logname", "keyword", "PAM's login name."),
    ("pwd", "keyword", "sudo's working directory."),
    ("command", "keyword", "The command sudo ran."),
    ("group", "keyword", "sudo's target group."),
    ("result", "keyword", "sudo's result (success, or why it refused)."),
    ("home", "keyword", "Home directory of a new user."),
    ("shell", "keyword", "Shell of a new user."),
    ("change", "keyword", "What usermod or gpasswd changed (group_add, group_remove, lock...)."),
)


_TABLE: Final[list[Field]] = [
    # ---------------------------------------------------------------- every document
    _f("@timestamp", "date", ALL, "When the event happened (the alert's triggering event; a dead letter: when "
       "its input was read).", required=ALL,
       pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"),
    # Required in events too once the audit decoder writes the envelope (it still writes schema_version).
    _f("ecs.version", "keyword", ALL, "The ECS version the document follows.", required=D | L,
       values=(ECS_VERSION,)),
    _f("schema_version", "keyword", E, "The contract version.", values=("1.0", CONTRACT_VERSION),
       legacy=f"secstream.schema_version and ecs.version ({_AUDIT_PENDING})"),
    _f("message", "match_only_text", ALL, "One line saying what happened (a dead letter: why it is one).",
       required=D | L),
    _f("tags", "keyword", E, "The audit rule keys (auditd's key=).", array=True),
    _f("host.name", "keyword", ALL, "The host the event is from (node= or the syslog host; 'unknown' when "
       "the input did not say).", required=ALL),
    _f("event.id", "keyword", ALL, "Deterministic id: the same input always gives the same id.",
       required=ALL, pattern=_HEX32),
    _f("event.kind", "keyword", ALL, "event, alert or pipeline_error (dead letters).", required=ALL,
       values_in=(("events", ("event",)), ("detections", ("alert",)), ("deadletter", ("pipeline_error",)))),
    _f("event.module", "keyword", ALL, "The input the document comes from; alerts: secstream.", required=ALL,
       values_in=(("events", ("auditd", "syslog")), ("detections", ("secstream",)),
                  ("deadletter", ("auditd", "syslog", "secstream")))),
    _f("event.dataset", "keyword", ALL, "<event.module>.<what>: auditd.log, syslog.log, <module>.session "
       "(session summaries), secstream.alert, <module>.deadletter.", required=D | L,
       values_in=(("events", ("auditd.log", "syslog.log", "auditd.session", "syslog.session")),
                  ("detections", ("secstream.alert",)),
                  ("deadletter", ("auditd.deadletter", "syslog.deadletter", "secstream.deadletter")))),
    _f("event.category", "keyword", ED, "ECS categories.", array=True, values=EVENT_CATEGORIES),
    _f("event.type", "keyword", ED, "ECS types.", array=True, values=EVENT_TYPES),
    _f("event.action", "keyword", E, "What happened: the syscall, the audit record type or the interpreted "
       "syslog action (ssh_login, sudo_command...), session_summary."),
    _f("event.outcome", "keyword", E, "success, failure or unknown.", values=EVENT_OUTCOMES),
    _f("event.sequence", "long", E, "The audit event's serial number."),
    _f("event.duration", "long", E, "Session summaries: the session's length in nanoseconds.", minimum=0),
    _f("event.start", "date", E, "Session summaries: when the session started."),
    _f("event.end", "date", E, "Session summaries: when the session ended."),
    _f("event.severity", "long", D, "0-100: 21 low, 47 medium, 73 high, 99 critical.", required=D, minimum=0,
       maximum=100),
    _f("event.risk_score", "float", D, "0-100, what Elastic Security reads as the alert's risk score (the "
       "severity).", required=D, minimum=0, maximum=100),
    _f("event.original", "keyword", L, "The input that could not be processed, as text (undecodable bytes "
       "escaped as \\xNN).", required=L, index=False),
    _f("event.reason", "keyword", L, "Why it could not be processed.", required=L),
    _f("error.message", "match_only_text", L, "Why it could not be processed.", required=L),
    _f("error.type", "keyword", L, "The error class.", required=L),
    # ---------------------------------------------------------------- process
    _f("process.pid", "long", ED, "Process id.", nullable=True),
    _f("process.entity_id", "keyword", ED, "secstream's unique id of the process (host, pid, start)."),
    _f("process.executable", "keyword", ED, "Absolute path of the executable.", nullable=True, text=True),
    _f("process.name", "keyword", ED, "Process name (comm, or the syslog program).", nullable=True, text=True),
    _f("process.args", "keyword", ED, "The arguments, the program first.", array=True),
    _f("process.args_count", "long", ED, "How many arguments.", nullable=True),
    _f("process.command_line", "wildcard", ED, "The arguments joined by spaces.", nullable=True, text=True),
    _f("process.title", "keyword", ED, "The process title (PROCTITLE).", nullable=True, text=True),
    _f("process.working_directory", "keyword", ED, "Working directory.", nullable=True, text=True),
    _f("process.start", "date", ED, "When the process started.", nullable=True),
    *_process_entity("process.parent", ED, "the parent process"),
    *_process_entity("process.session_leader", ED, "the session leader"),
    *_process_entity("process.entry_leader", ED, "the entry leader (the process the session entered by)"),
    _f("process.ppid", "long", ED, "The parent pid the event reported, as the audit decoder writes it.",
       nullable=True, legacy="secstream.process.ppid, where the process tracker moves it (the decoder's "
       "documents before the tracker still have it)"),
    _f("secstream.process.ppid", "long", ED, "The parent pid the event reported (process.parent is the "
       "tracked parent, which differs for a reparented process).", nullable=True),
    _f("secstream.process.ancestors", "nested", ED, "The nearest ancestors, parent first (nested, so an "
       "ancestor's name and pid are queried together).", array=True),
    *_process_entity("secstream.process.ancestors", ED, "an ancestor"),
    # ---------------------------------------------------------------- user, group, file
    _f("user.id", "keyword", ED, "The user id (uid)."),
    _f("user.name", "keyword", ED, "The user name.", text=True),
    _f("user.effective.id", "keyword", ED, "The effective user id (euid)."),
    _f("user.effective.name", "keyword", ED, "The effective user name.", text=True),
    _f("user.group.id", "keyword", ED, "The user's group id (gid)."),
    _f("user.group.name", "keyword", ED, "The user's group name."),
    _f("user.target.id", "keyword", ED, "The target user's id (a created or changed account, sudo's USER)."),
    _f("user.target.name", "keyword", ED, "The target user's name.", text=True),
    _f("user.audit.id", "keyword", ED, "The audit user id (auid).",
       legacy=f"secstream.user.audit.id ({_AUDIT_PENDING})"),
    _f("user.audit.name", "keyword", ED, "The audit user name.",
       legacy=f"secstream.user.audit.name ({_AUDIT_PENDING})"),
    _f("secstream.user.audit.id", "keyword", ED, "The audit (login) user id, auid: who logged in, "
       "whatever su/sudo did since."),
    _f("secstream.user.audit.name", "keyword", ED, "The audit (login) user name."),
    _f("group.id", "keyword", E, "The group created or changed."),
    _f("group.name", "keyword", E, "The group created or changed."),
    _f("file.path", "keyword", E, "The file the event is about (first PATH record, or a unix socket).",
       text=True),
    # ---------------------------------------------------------------- network
    *_endpoint("source", "source"),
    *_endpoint("destination", "destination"),
    _f("related.ip", "ip", ED, "Every IP address of the event.", array=True),
    _f("related.user", "keyword", ED, "Every user name of the event.", array=True),
    _f("related.hosts", "keyword", ED, "Every host or domain name of the event.", array=True),
    _f("related.hash", "keyword", ED, "Every hash of the event.", array=True),
    # ---------------------------------------------------------------- syslog
    _f("log.syslog.appname", "keyword", E, "The program (TAG or APP-NAME)."),
    _f("log.syslog.procid", "keyword", E, "The process id as the record gave it."),
    _f("log.syslog.msgid", "keyword", E, "RFC 5424 MSGID."),
    _f("log.syslog.priority", "long", E, "PRI."),
    _f("log.syslog.facility.code", "long", E, "Facility number."),
    _f("log.syslog.facility.name", "keyword", E, "Facility name."),
    _f("log.syslog.severity.code", "long", E, "Severity number."),
    _f("log.syslog.severity.name", "keyword", E, "Severity name."),
    _f("log.syslog.version", "keyword", E, "RFC 5424 VERSION, as text (\"1\")."),
    _f("log.syslog.structured_data", "flattened", E, "RFC 5424 STRUCTURED-DATA: {SD-ID: {name: value}}."),
    *(_f(f"secstream.syslog.{name}", type_, E, description) for name, type_, description in _SYSLOG_DETAILS),
    # ---------------------------------------------------------------- Auditbeat's namespace
    _f("auditd.sequence", "long", E, "The audit event's serial number (Auditbeat: long)."),
    _f("auditd.session", "keyword", E, "The audit session id, ses= (Auditbeat: keyword).", nullable=True),
    _f("auditd.data", "object", E, "The audit records' other fields, as Auditbeat names them: every value a "
       "string (Auditbeat maps every auditd.data.* as keyword).", open_values="keyword"),
    _f("auditd.data.socket.family", "keyword", E, "Decoded SOCKADDR: address family."),
    _f("auditd.data.socket.ip", "keyword", E, "Decoded SOCKADDR: IP address."),
    _f("auditd.data.socket.port", "keyword", E, "Decoded SOCKADDR: port, as text."),
    _f("auditd.data.socket.path", "keyword", E, "Decoded SOCKADDR: unix socket path."),
    _f("auditd.paths", "object", E, "The PATH records, one object each, every value a string (Auditbeat).",
       array=True, open_values="keyword"),
    _f("auditd.data.argc", "long", E, "EXECVE argc.", nullable=True,
       legacy=f"auditd.data.argc as a string, Auditbeat's keyword ({_AUDIT_PENDING})"),
    _f("auditd.data.socket.port", "long", E, "Decoded SOCKADDR port.",
       legacy=f"auditd.data.socket.port as a string, Auditbeat's keyword ({_AUDIT_PENDING})"),
    _f("auditd.data.proctitle_truncated", "boolean", E, "The PROCTITLE was cut by the kernel.",
       legacy=f"secstream.auditd.proctitle_truncated ({_AUDIT_PENDING})"),
    _f("auditd.message_types", "keyword", E, "The record types of the event.", array=True,
       legacy=f"secstream.auditd.message_types ({_AUDIT_PENDING})"),
    _f("auditd.partial", "boolean", E, "The event was flushed without its EOE.",
       legacy=f"secstream.auditd.partial ({_AUDIT_PENDING})"),
    _f("auditd.warnings", "keyword", E, "What was odd in the records.", array=True,
       legacy=f"secstream.auditd.warnings ({_AUDIT_PENDING})"),
    _f("auditd.late_of", "keyword", E, "The event id a late record belongs to.",
       legacy=f"secstream.auditd.late_of ({_AUDIT_PENDING})"),
    _f("secstream.auditd.message_types", "keyword", E, "Every record type of the audit event.", array=True),
    _f("secstream.auditd.partial", "boolean", E, "The event was flushed before its EOE arrived."),
    _f("secstream.auditd.warnings", "keyword", E, "What was odd in the records (duplicates, gaps).", array=True),
    _f("secstream.auditd.late_of", "keyword", E, "A record that came after its event was flushed: that "
       "event's id.", pattern=_HEX32),
    _f("secstream.auditd.proctitle_truncated", "boolean", E, "The PROCTITLE was cut by the kernel."),
    # ---------------------------------------------------------------- threat intelligence
    _f("threat.enrichments", "nested", E, "One entry per threat-intelligence match.", array=True),
    _f("threat.enrichments.indicator.type", "keyword", E, "The indicator's type.", values=INDICATOR_TYPES,
       required=E),
    _f("threat.enrichments.indicator.provider", "keyword", E, "The threat-intelligence provider.", required=E),
    _f("threat.enrichments.indicator.confidence", "keyword", E, "Low, Medium or High (the provider's "
       "severity).", values=("Not Specified", "None", "Low", "Medium", "High")),
    _f("threat.enrichments.indicator.ip", "ip", E, "The matched IP address."),
    _f("threat.enrichments.indicator.url.domain", "keyword", E, "The matched domain."),
    _f("threat.enrichments.indicator.url.original", "wildcard", E, "The matched URL.", text=True),
    _f("threat.enrichments.indicator.file.hash.md5", "keyword", E, "The matched MD5."),
    _f("threat.enrichments.indicator.file.hash.sha1", "keyword", E, "The matched SHA-1."),
    _f("threat.enrichments.indicator.file.hash.sha256", "keyword", E, "The matched SHA-256."),
    _f("threat.enrichments.indicator.reference", "keyword", E, "The provider's page about the indicator."),
    _f("threat.enrichments.indicator.description", "keyword", E, "The provider's description."),
    _f("threat.enrichments.indicator.first_seen", "date", E, "When the provider first saw it."),
    _f("threat.enrichments.indicator.last_seen", "date", E, "When the provider last saw it."),
    _f("threat.enrichments.matched.atomic", "keyword", E, "The matched value.", required=E),
    _f("threat.enrichments.matched.field", "keyword", E, "The field it was found in.", required=E),
    _f("threat.enrichments.matched.type", "keyword", E, "indicator_match_rule: an indicator matched a field of "
       "the event.", required=E, values=("indicator_match_rule",)),
    _f("secstream.enrichment.matches", "nested", E, "Per threat.enrichments entry, in the same order: the "
       "provider's own answer.", array=True),
    _f("secstream.enrichment.matches.provider", "keyword", E, "The provider.", required=E),
    _f("secstream.enrichment.matches.atomic", "keyword", E, "The matched value.", required=E),
    _f("secstream.enrichment.matches.status", "keyword", E, "hit.", required=E, values=("hit",)),
    _f("secstream.enrichment.matches.severity", "keyword", E, "The provider's severity.", required=E,
       values=("warning", "high")),
    _f("secstream.enrichment.matches.details", "object", E, "The provider's own answer, size-capped: any JSON, "
       "kept in the document but not indexed.", index=False),
    _f("secstream.enrichment.incomplete", "object", E, "Lookups that could not answer for this event.",
       array=True),
    _f("secstream.enrichment.incomplete.provider", "keyword", E, "The provider.", required=E),
    _f("secstream.enrichment.incomplete.status", "keyword", E, "pending, failed or rate_limited.", required=E,
       values=("pending", "failed", "rate_limited")),
    # ---------------------------------------------------------------- alerts
    _f("rule.id", "keyword", D, "The rule's id.", required=D),
    _f("rule.uuid", "keyword", D, "The rule's UUID (Sigma rules)."),
    _f("rule.name", "keyword", D, "The rule's name.", required=D),
    _f("rule.version", "keyword", D, "The rule's version.", required=D),
    _f("rule.description", "keyword", D, "What the rule looks for.", required=D),
    _f("rule.reference", "keyword", D, "Where to read about the rule or what it detects (URLs).", array=True),
    _f("rule.ruleset", "keyword", D, "The rule set: secstream (built in), the file of a user's rules, or a "
       "Sigma rule set.", required=D),
    _f("rule.category", "keyword", D, "The log source a Sigma rule reads."),
    _f("rule.author", "keyword", D, "The rule's authors.", array=True),
    _f("rule.license", "keyword", D, "The rule's license."),
    _f("threat.framework", "keyword", D, "MITRE ATT&CK.", required=D, values=("MITRE ATT&CK",)),
    _f("threat.tactic.id", "keyword", D, "ATT&CK tactic ids (TA0002).", array=True, pattern=_ATTACK_TACTIC),
    _f("threat.tactic.name", "keyword", D, "ATT&CK tactic names.", array=True),
    _f("threat.tactic.reference", "keyword", D, "ATT&CK tactic pages.", array=True),
    _f("threat.technique.id", "keyword", D, "ATT&CK technique ids (T1059), sub-techniques' parents included.",
       required=D, array=True, pattern=_ATTACK_TECHNIQUE),
    _f("threat.technique.name", "keyword", D, "ATT&CK technique names.", array=True, text=True),
    _f("threat.technique.reference", "keyword", D, "ATT&CK technique pages.", array=True),
    _f("threat.technique.subtechnique.id", "keyword", D, "ATT&CK sub-technique ids (T1059.004).", array=True,
       pattern=_ATTACK_SUBTECHNIQUE),
    _f("threat.technique.subtechnique.name", "keyword", D, "ATT&CK sub-technique names.", array=True,
       text=True),
    _f("threat.technique.subtechnique.reference", "keyword", D, "ATT&CK sub-technique pages.", array=True),
    _f("secstream.evidence.event_ids", "keyword", D, "The events that raised the alert.", required=D,
       array=True, pattern=_HEX32),
    _f("secstream.rule_match.field", "keyword", D, "The field the rule matched in."),
    _f("secstream.rule_match.value", "keyword", D, "The text it matched (capped)."),
    _f("secstream.cmd_speed.user", "keyword", D, "Whose commands came too fast."),
    _f("secstream.cmd_speed.events", "long", D, "How many commands."),
    _f("secstream.cmd_speed.delta_s", "float", D, "Within how many seconds."),
    _f("secstream.cmd_speed.commands", "keyword", D, "The commands.", array=True),
    _f("secstream.triggered_by.rule_id", "keyword", D, "The rule whose alert made this one (risky sudo)."),
    _f("secstream.triggered_by.event_id", "keyword", D, "That alert's id.", pattern=_HEX32),
    _f("secstream.sigma.source", "keyword", D, "The view of the event the Sigma rule matched."),
    _f("secstream.sigma.level", "keyword", D, "The Sigma rule's level.",
       values=("informational", "low", "medium", "high", "critical")),
    _f("secstream.sigma.row_type", "keyword", D, "The type of the row the Sigma rule matched."),
    # ---------------------------------------------------------------- secstream, events and alerts
    _f("secstream.schema_version", "keyword", ALL, "secstream's output contract version.", required=D | L,
       values=(CONTRACT_VERSION,)),
    _f("secstream.iocs", "object", ED, "IoCs found in the event's texts and decoded layers, per type "
       "(ipv4, ipv6, dns, url, md5_hash, sha1_hash, sha256_hash, sha512_hash, email, linux_path...).",
       open_values="string_array"),
    _f("secstream.decoded", "object", ED, "Base64 and compressed layers decoded from the event's texts.",
       array=True),
    _f("secstream.decoded.field", "keyword", ED, "The event field the layer was decoded from."),
    _f("secstream.decoded.depth", "long", ED, "Nesting depth (1: base64 in the text itself)."),
    _f("secstream.decoded.index", "keyword", ED, "Hierarchical index (1.2)."),
    _f("secstream.decoded.encoding", "keyword", ED, "base64, or the container it came out of (zip, gz...)."),
    _f("secstream.decoded.file_type", "keyword", ED, "The detected file type.", nullable=True),
    _f("secstream.decoded.file_name", "keyword", ED, "The archive member's name, or unknown."),
    _f("secstream.decoded.encoding_type", "keyword", ED, "utf-8, utf-16 or binary."),
    _f("secstream.decoded.size", "long", ED, "Decoded size in bytes."),
    _f("secstream.decoded.md5", "keyword", ED, "MD5 of the decoded bytes."),
    _f("secstream.decoded.sha256", "keyword", ED, "SHA-256 of the decoded bytes."),
    _f("secstream.decoded.text", "keyword", ED, "The decoded text (text layers, capped).", index=False),
    _f("secstream.analysis.truncated", "boolean", ED, "The text was cut to the IoC scanner's size cap."),
    _f("secstream.analysis.decode_limits", "keyword", ED, "The decoding limits that were hit.", array=True),
    _f("secstream.session.id", "keyword", ED, "The logon session the event belongs to."),
    _f("secstream.session.start", "date", ED, "When the session started.", nullable=True),
    _f("secstream.session.user", "keyword", ED, "Who logged in or elevated.", nullable=True),
    _f("secstream.session.service", "keyword", ED, "sshd, sudo, su, login, cron..."),
    _f("secstream.session.source_ip", "ip", ED, "Where the session came from.", nullable=True),
    _f("secstream.session.session_user", "keyword", E, "Session summaries: the user the session ran as.",
       nullable=True),
    _f("secstream.session.pid", "keyword", E, "Session summaries: the session's process id.", nullable=True),
    _f("secstream.session.event_count", "long", E, "Session summaries: how many events it had."),
    # ---------------------------------------------------------------- dead letters
    _f("secstream.original_base64", "keyword", L, "The exact original bytes, base64.", required=L, index=False),
    _f("secstream.source", "object", L, "Where the input came from.", required=L),
    _f("secstream.source.topic", "keyword", L, "Kafka topic."),
    _f("secstream.source.partition", "long", L, "Kafka partition."),
    _f("secstream.source.offset", "long", L, "Kafka offset."),
    _f("secstream.source.file", "keyword", L, "Input file."),
    _f("secstream.source.line", "long", L, "Line number in the input file."),
    _f("secstream.source.event_id", "keyword", L, "A too-large output document: its event.id."),
    _f("secstream.original_truncated", "boolean", L, "The original was too large for an output record: "
       "secstream.original_base64 and event.original hold only its start."),
    _f("secstream.original_size", "long", L, "The whole original's length in bytes (with original_truncated)."),
    _f("secstream.original_sha256", "keyword", L, "The whole original's SHA-256, hex (with "
       "original_truncated).", pattern=r"^[0-9a-f]{64}$"),
]  # fmt: skip

FIELDS: Final[tuple[Field, ...]] = tuple(_TABLE)


def fields_for(output: str, *, legacy: bool = True) -> list[Field]:
    """The fields of one output stream, in table order (without the legacy ones when ``legacy`` is False)."""
    if output not in OUTPUTS:
        raise KeyError(f"unknown output stream {output!r}; expected one of {OUTPUTS}")
    return [f for f in FIELDS if output in f.outputs and (legacy or not f.legacy)]


def _check(fields: Iterable[Field]) -> None:
    seen: set[str] = set()
    for item in fields:
        key = f"{item.name}/{bool(item.legacy)}"
        if key in seen:
            raise ValueError(f"{item.name} is in the field table twice")
        seen.add(key)


_check(FIELDS)
