"""msticpy.sectools parity: every public name the seed documentation lists is exposed by secstream.

The seed (``shared/seed/000_9f37eb755ceadba3.txt``, the msticpy 1.5 ``sectools`` API docs) is parsed
into a list of public names: module functions, classes and exceptions, and the members documented
under each class (methods, properties, class/static/abstract methods, attrs/dataclass fields, enum
members and class constants, exception attributes). Each name must be reachable where
``docs/migrating-from-msticpy.md`` says it is (``msticpy.sectools.X`` → ``processors.X``), and
every documented signature must be call-compatible: msticpy's parameter names in the same
positions, its defaults kept, extra secstream parameters only with defaults.

Run as a script to print the name count or the migration table::

    /work/venv/bin/python tests/test_seed_api.py            # counts per module and kind
    /work/venv/bin/python tests/test_seed_api.py --markdown # the migration-guide table
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SEED_NAME = "seed/000_9f37eb755ceadba3.txt"

#: The number of public names issue 10 quotes for the seed.
ISSUE_COUNT = 269

#: msticpy.sectools module → secstream module (the migration guide's table is generated from this).
MODULE_MAP: dict[str, str] = {
    "auditdextract": "processors.auditdextract",
    "base64unpack": "processors.base64unpack",
    "cmd_line": "processors.cmd_line",
    "geoip": "processors.geoip",
    "iocextract": "processors.iocextract",
    "proc_tree_builder": "processors.proc_tree_builder",
    "proc_tree_build_winlx": "processors.proc_tree_build_winlx",
    "proc_tree_build_mde": "processors.proc_tree_build_mde",
    "process_tree_utils": "processors.process_tree_utils",
    "syslog_utils": "processors.syslog_utils",
    "tilookup": "processors.tilookup",
    "tiproviders.ti_provider_base": "processors.tiproviders.ti_provider_base",
    "tiproviders.greynoise": "processors.tiproviders.greynoise",
    "tiproviders.http_base": "processors.tiproviders.http_base",
    "tiproviders.alienvault_otx": "processors.tiproviders.alienvault_otx",
    "tiproviders.ibm_xforce": "processors.tiproviders.ibm_xforce",
    "tiproviders.virustotal": "processors.tiproviders.virustotal",
    "vtlookup": "processors.vtlookup",
    "vtlookupv3": "processors.vtlookupv3",
}

#: Names whose secstream home is not the mapped module's own namespace: (msticpy module, top name) →
#: secstream module. Empty: the pandas accessors are defined in processors.accessors and re-exported by
#: processors.base64unpack / processors.iocextract, where a msticpy user looks for them.
NAME_OVERRIDES: dict[tuple[str, str], str] = {}

#: Member kinds that are documented by Sphinx but inherited from Python builtins (tuple.count/index,
#: BaseException.args/with_traceback). They are listed (and checked), but not counted as the issue's
#: "public names" – see :func:`counted`.
INHERITED = {"count", "index", "args", "with_traceback"}

#: Default values in the seed that are environment-specific and need not be equal (only present).
LOOSE_DEFAULTS = {("cmd_line", "risky_cmd_line", "detection_rules")}


@dataclasses.dataclass(frozen=True, slots=True)
class SeedParam:
    """One documented parameter: ``kind`` is ``positional`` (incl. keyword), ``var`` (*args), ``varkw``."""

    name: str
    default: str | None
    kind: str


@dataclasses.dataclass(frozen=True, slots=True)
class SeedName:
    """A public name documented in the seed."""

    module: str
    qualname: str
    kind: str
    params: tuple[SeedParam, ...] | None
    value: str | None
    line: int

    @property
    def top(self) -> str:
        """The module-level name (function, class or exception)."""
        return self.qualname.split(".")[0]

    @property
    def member(self) -> str | None:
        """The member name for class members, else None."""
        parts = self.qualname.split(".")
        return parts[1] if len(parts) > 1 else None

    @property
    def msticpy_name(self) -> str:
        """Full msticpy dotted name."""
        return f"msticpy.sectools.{self.module}.{self.qualname}"

    @property
    def target_module(self) -> str:
        """The secstream module expected to expose the top-level name."""
        return NAME_OVERRIDES.get((self.module, self.top), MODULE_MAP[self.module])

    @property
    def secstream_name(self) -> str:
        """Full secstream dotted name."""
        return f"{self.target_module}.{self.qualname}"


# ---------------------------------------------------------------------------------------------------
# Parsing

_MODULE_RE = re.compile(r"^msticpy\.sectools\.(?P<mod>[\w.]+) module$")
_TOP_RE = re.compile(r"^(?:(?P<kw>class|exception) )?msticpy\.sectools\.(?P<path>[\w.]+?)(?P<rest>\(.*)?$")
_PREFIXED_RE = re.compile(r"^(?P<prefix>property|classmethod|static|abstract) (?P<name>[A-Za-z_]\w*)(?P<rest>.*)$")
_METHOD_RE = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?P<rest>\(.*)$")
_ASSIGN_RE = re.compile(r"^(?P<name>[A-Za-z_]\w*) = (?P<value>-?\d+|'.*|\".*)$")
_FIELD_RE = re.compile(r"^(?P<name>[a-z_]\w*): (?P<ann>\S.*)$")
_PARAM_RE = re.compile(r"^(?P<stars>\*{0,2})(?P<name>\w+)(?:\s*:\s*(?P<ann>.+?))?(?:\s*=\s*(?P<default>.+))?$")

_PREFIX_KIND = {"property": "property", "classmethod": "classmethod", "static": "staticmethod", "abstract": "abstract"}


def _split_top(text: str) -> list[str]:
    """Split on commas that are not nested in brackets or quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _param_text(rest: str) -> str:
    """Return what is between the opening parenthesis of ``rest`` and its matching close."""
    depth, quote = 0, ""
    for index, char in enumerate(rest):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return rest[1:index]
    raise ValueError(f"unbalanced signature: {rest!r}")


def parse_params(rest: str) -> tuple[SeedParam, ...]:
    """Parse ``(a: int = 1, *, b, **kwargs) ret`` into parameters (``/`` and ``*`` markers dropped)."""
    params = []
    for item in _split_top(_param_text(rest)):
        if item in ("/", "*"):
            continue
        match = _PARAM_RE.match(item)
        if match is None:
            raise ValueError(f"cannot parse parameter {item!r}")
        kind = {"": "positional", "*": "var", "**": "varkw"}[match["stars"]]
        params.append(SeedParam(match["name"], match["default"], kind))
    return tuple(params)


def parse_seed(text: str) -> list[SeedName]:
    """Parse the seed document into the list of public names it documents."""
    names: list[SeedName] = []
    module = ""
    cls: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line or line[0].isspace():
            continue
        if match := _MODULE_RE.match(line):
            module, cls = match["mod"], None
            continue
        if match := _TOP_RE.match(line):
            path, rest, keyword = match["path"], match["rest"], match["kw"]
            if path.startswith(module + "."):
                qual = path[len(module) + 1 :]
            elif path.startswith("tiproviders."):
                # "msticpy.sectools.tiproviders.GreyNoise.ioc_query_defs": documented via the package alias.
                qual = path[len("tiproviders.") :]
            else:
                raise ValueError(f"line {lineno}: {path} is not in module {module}")
            params = parse_params(rest) if rest else None
            if keyword:
                cls = qual
                names.append(SeedName(module, qual, keyword, params, None, lineno))
            elif "." in qual:
                names.append(SeedName(module, qual, "attribute", None, None, lineno))
            else:
                cls = None
                names.append(SeedName(module, qual, "function", params, None, lineno))
            continue
        if cls is None:
            continue
        if match := _PREFIXED_RE.match(line):
            kind = _PREFIX_KIND[match["prefix"]]
            rest = match["rest"]
            params = parse_params(rest) if rest.startswith("(") else None
            names.append(SeedName(module, f"{cls}.{match['name']}", kind, params, None, lineno))
        elif match := _METHOD_RE.match(line):
            names.append(
                SeedName(module, f"{cls}.{match['name']}", "method", parse_params(match["rest"]), None, lineno)
            )
        elif match := _ASSIGN_RE.match(line):
            names.append(SeedName(module, f"{cls}.{match['name']}", "constant", None, match["value"], lineno))
        elif match := _FIELD_RE.match(line):
            names.append(SeedName(module, f"{cls}.{match['name']}", "field", None, None, lineno))
        elif line == "args":
            names.append(SeedName(module, f"{cls}.args", "attribute", None, None, lineno))
    return names


def counted(names: list[SeedName]) -> list[SeedName]:
    """The names the issue counts: everything except members inherited from tuple / BaseException."""
    return [n for n in names if n.member not in INHERITED]


def load_seed(shared: Path) -> list[SeedName]:
    """Read and parse the seed from the shared directory."""
    return parse_seed((shared / SEED_NAME).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------
# Checking


def _has_member(owner: Any, name: str) -> bool:
    if hasattr(owner, name):
        return True
    if dataclasses.is_dataclass(owner) and name in {f.name for f in dataclasses.fields(owner)}:
        return True
    for klass in getattr(owner, "__mro__", ()):
        if name in getattr(klass, "__annotations__", {}) or name in getattr(klass, "__slots__", ()):
            return True
    return False


def resolve(name: SeedName) -> tuple[Any, Any, str | None]:
    """Return ``(owner, obj, problem)``: ``problem`` explains why the name is not reachable."""
    try:
        module = importlib.import_module(name.target_module)
    except ImportError as err:
        return None, None, f"module {name.target_module} cannot be imported ({err})"
    top = getattr(module, name.top, None)
    if top is None:
        return module, None, "missing"
    if name.member is None:
        return module, top, None
    if not _has_member(top, name.member):
        return top, None, "missing"
    return top, inspect.getattr_static(top, name.member, None), None


def _literal(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False, None


def _callable_for(owner: Any, obj: Any, name: SeedName) -> Any:
    if name.kind in ("class", "exception"):
        return obj
    if isinstance(obj, staticmethod | classmethod):
        return getattr(owner, name.member or "")
    return obj


def signature_problems(name: SeedName, owner: Any, obj: Any) -> list[str]:
    """Compare the documented parameters with the implementation's signature."""
    if name.params is None or name.member in INHERITED:
        return []
    target = _callable_for(owner, obj, name)
    if isinstance(target, property):
        return [f"{name.qualname} is a property, documented as callable"]
    if not callable(target):
        return [f"{name.qualname} is not callable"]
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []  # builtins without a signature
    params = list(signature.parameters.values())
    is_method = name.member is not None and name.kind in ("method", "abstract") and inspect.isfunction(target)
    if is_method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    problems: list[str] = []
    by_name = {p.name: p for p in params}
    has_varkw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    has_var = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    seed_positional = [p for p in name.params if p.kind == "positional"]
    for index, seed_param in enumerate(seed_positional):
        impl = by_name.get(seed_param.name)
        if impl is None:
            problems.append(f"parameter {seed_param.name!r} missing")
            continue
        if index < len(positional) and positional[index].name != seed_param.name and impl.kind is not impl.KEYWORD_ONLY:
            problems.append(f"parameter {seed_param.name!r} not at position {index}")
        if impl.kind is impl.KEYWORD_ONLY and seed_param.default is None:
            problems.append(f"required parameter {seed_param.name!r} is keyword-only")
        if seed_param.default is not None:
            if impl.default is inspect.Parameter.empty:
                problems.append(f"parameter {seed_param.name!r} lost its default {seed_param.default}")
            elif (name.module, name.top, seed_param.name) not in LOOSE_DEFAULTS:
                ok, expected = _literal(seed_param.default)
                if ok and impl.default != expected:
                    problems.append(f"default of {seed_param.name!r} is {impl.default!r}, msticpy {seed_param.default}")
    if any(p.kind == "varkw" for p in name.params) and not has_varkw:
        problems.append("**kwargs not accepted")
    if any(p.kind == "var" for p in name.params) and not has_var:
        problems.append("*args not accepted")
    documented = {p.name for p in name.params}
    for extra in params:
        if extra.name in documented or extra.kind in (extra.VAR_KEYWORD, extra.VAR_POSITIONAL):
            continue
        if extra.default is inspect.Parameter.empty:
            problems.append(f"extra parameter {extra.name!r} has no default")
    return [f"{name.secstream_name}: {p}" for p in problems]


def kind_problems(name: SeedName, owner: Any, obj: Any) -> list[str]:
    """Check that class/static methods can be called on the class, properties are attributes, enums match."""
    where = name.secstream_name
    if name.kind == "staticmethod" and not isinstance(obj, staticmethod | classmethod):
        return [f"{where}: documented as a staticmethod, is {type(obj).__name__}"]
    if name.kind == "classmethod" and not isinstance(obj, classmethod | staticmethod):
        return [f"{where}: documented as a classmethod, is {type(obj).__name__}"]
    if name.kind in ("class", "exception") and not inspect.isclass(obj):
        return [f"{where}: documented as a {name.kind}, is {type(obj).__name__}"]
    if name.kind == "exception" and not issubclass(obj, Exception):
        return [f"{where}: not an Exception subclass"]
    if name.kind == "constant" and inspect.isclass(owner) and issubclass(owner, enum.Enum):
        member = owner.__members__.get(name.member or "")
        ok, expected = _literal(name.value or "")
        if member is None:
            return [f"{where}: not an enum member"]
        if ok and member.value != expected:
            return [f"{where}: enum value {member.value!r}, msticpy {expected!r}"]
    return []


def audit(names: list[SeedName]) -> tuple[dict[str, list[str]], list[str]]:
    """Return (missing names per msticpy module, signature/kind problems)."""
    missing: dict[str, list[str]] = defaultdict(list)
    problems: list[str] = []
    unimportable: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for name in names:
        owner, obj, problem = resolve(name)
        if problem is not None and problem != "missing":
            unimportable[name.module] += 1
            reasons[name.module] = problem
            continue
        if problem is not None:
            missing[name.module].append(name.secstream_name)
            continue
        problems += kind_problems(name, owner, obj)
        problems += signature_problems(name, owner, obj)
    for module, count in unimportable.items():
        missing[module].insert(0, f"all {count} names: {reasons[module]}")
    return dict(missing), problems


# ---------------------------------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module")
def seed_names(shared_dir: Path) -> list[SeedName]:
    """Every public name documented in the seed."""
    return load_seed(shared_dir)


class TestSeedParser:
    """The parser reads every public name of the seed."""

    def test_counts_the_issues_public_names(self, seed_names: list[SeedName]) -> None:
        """The seed documents 269 public names (not counting members inherited from tuple/BaseException)."""
        assert len(counted(seed_names)) == ISSUE_COUNT

    def test_covers_every_module(self, seed_names: list[SeedName]) -> None:
        """Each of the 19 documented modules contributes names and has a secstream home."""
        assert {n.module for n in seed_names} == set(MODULE_MAP)

    def test_parses_members_of_each_kind(self, seed_names: list[SeedName]) -> None:
        """Properties, class/static/abstract methods, fields, enum members and exceptions are recognised."""
        by_name = {n.msticpy_name: n for n in seed_names}
        base = "msticpy.sectools.tiproviders.ti_provider_base."
        assert by_name[base + "TIProvider.ioc_query_defs"].kind == "property"
        assert by_name[base + "TIProvider.is_known_type"].kind == "classmethod"
        assert by_name[base + "TIProvider.resolve_ioc_type"].kind == "staticmethod"
        assert by_name[base + "TIProvider.parse_results"].kind == "abstract"
        assert by_name[base + "TISeverity.high"].value == "2"
        assert by_name[base + "LookupResult.details"].kind == "field"
        assert by_name["msticpy.sectools.vtlookupv3.MsticpyVTNoDataError"].kind == "exception"
        assert by_name["msticpy.sectools.tiproviders.greynoise.GreyNoise.supported_types"].kind == "attribute"
        lookup = by_name["msticpy.sectools.vtlookup.VTLookup.lookup_iocs"]
        assert [p.name for p in lookup.params or ()] == ["data", "src_col", "type_col", "src_index_col", "kwargs"]
        assert by_name["msticpy.sectools.process_tree_utils.get_descendents"].params[-1].default == "- 1"  # type: ignore[index]

    def test_parses_nested_signatures(self) -> None:
        """Commas inside brackets and quotes do not split parameters."""
        params = parse_params("(a: Tuple[float, float], b: str = 'x, y', *, c=None, **kwargs) int")
        assert [(p.name, p.default, p.kind) for p in params] == [
            ("a", None, "positional"),
            ("b", "'x, y'", "positional"),
            ("c", "None", "positional"),
            ("kwargs", None, "varkw"),
        ]


def _fake(name: str, params: str, kind: str = "function") -> SeedName:
    return SeedName("cmd_line", name, kind, parse_params(params), None, 0)


def _reference(events: Any, log_type: str, cmd_field: str = "Command") -> None:
    """A stand-in with the documented parameters."""


class TestSignatureChecker:
    """The compatibility checks catch real incompatibilities (so a passing audit means something)."""

    def test_compatible_signature_passes(self) -> None:
        """Same names, positions and defaults, plus an optional keyword-only extra, pass."""

        def impl(events: Any, log_type: str, cmd_field: str = "Command", *, strict: bool = False) -> None:
            """Compatible."""

        assert signature_problems(_fake("f", "(events, log_type, cmd_field='Command')"), None, impl) == []

    def test_missing_parameter_and_changed_default_fail(self) -> None:
        """A renamed parameter and a changed default are both reported."""

        def impl(data: Any, log_type: str, cmd_field: str = "cmd") -> None:
            """Incompatible."""

        problems = signature_problems(_fake("f", "(events, log_type, cmd_field='Command')"), None, impl)
        assert any("'events' missing" in p for p in problems)
        assert any("default of 'cmd_field'" in p for p in problems)

    def test_required_extra_and_lost_kwargs_fail(self) -> None:
        """A new required parameter and a dropped ``**kwargs`` are reported."""

        def impl(events: Any, log_type: str, extra: int, cmd_field: str = "Command") -> None:
            """Incompatible."""

        problems = signature_problems(_fake("f", "(events, log_type, cmd_field='Command', **kwargs)"), None, impl)
        assert any("'extra' has no default" in p for p in problems)
        assert any("**kwargs" in p for p in problems)
        assert any("not at position" in p for p in problems)

    def test_static_method_kind(self) -> None:
        """A name documented as static must be callable on the class."""

        class Impl:
            def browse(self) -> None:
                """Instance method."""

        name = SeedName("tilookup", "Impl.browse", "staticmethod", parse_params("(data)"), None, 0)
        assert kind_problems(name, Impl, inspect.getattr_static(Impl, "browse"))


class TestMigrationGuide:
    """docs/migrating-from-msticpy.md carries the generated table."""

    def test_guide_table_is_current(self, seed_names: list[SeedName]) -> None:
        """The guide contains the table generated from the seed (regenerate with --markdown)."""
        guide = (Path(__file__).resolve().parents[1] / "docs" / "migrating-from-msticpy.md").read_text(encoding="utf-8")
        table = "\n".join(_iter_table(seed_names)).strip()
        assert table in guide


class TestSeedApi:
    """Every documented name is exposed by secstream with a compatible signature."""

    def test_every_name_is_exposed(self, seed_names: list[SeedName]) -> None:
        """Each msticpy.sectools name exists at its migration-guide location."""
        missing, _ = audit(seed_names)
        lines = [f"{mod}: {len(items)} missing\n    " + "\n    ".join(items) for mod, items in sorted(missing.items())]
        assert not missing, f"names missing in {len(missing)} modules:\n" + "\n".join(lines)

    def test_signatures_are_compatible(self, seed_names: list[SeedName]) -> None:
        """Exposed names accept msticpy's parameter names, positions and defaults, and the right call kinds."""
        _, problems = audit(seed_names)
        assert not problems, f"{len(problems)} incompatibilities:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------------
# Script mode


#: Short notes for the migration table: (msticpy module, top-level name) → note (see the guide's
#: "Deliberate differences" section for the reasons).
TABLE_NOTES: dict[tuple[str, str], str] = {
    ("auditdextract", "read_from_file"): "D1: events keyed by TIME:SERIAL; every EXECVE argument",
    ("auditdextract", "extract_events_to_df"): "D1",
    ("auditdextract", "unpack_auditd"): "D1: all fields, `comm`, repeated record types kept",
    ("base64unpack", "unpack"): 'D2: no global caches, no "A" padding, limits',
    ("base64unpack", "unpack_items"): "D2",
    ("base64unpack", "unpack_df"): "D2",
    ("base64unpack", "BinaryRecord"): 'D2: `reference` is a string (`"1.2"`)',
    ("base64unpack", "B64ExtractAccessor"): "`df.mp_b64` on polars; on pandas after `register_pandas_accessors()`",
    ("iocextract", "IoCExtract"): "D3: RE2 patterns, URL-decode offset fixed, `include_paths` adds linux paths",
    ("iocextract", "IoCExtractAccessor"): "`df.mp_ioc` on polars; on pandas after `register_pandas_accessors()`",
    ("cmd_line", "risky_cmd_line"): "D4: a `dict` subclass: no match lost to timestamp collisions",
    ("cmd_line", "cmd_speed"): "D4: input sorted by time",
    ("syslog_utils", "cluster_syslog_logons_df"): "D5: sessions paired by host/service/user/pid",
    ("syslog_utils", "create_host_record"): "D5: a `processors.entities.Host`; `OSVMajorVersion` spelt right",
    ("geoip", "GeoLiteLookup"): "D6: private IPs reported, cache works, safe DB download",
    ("process_tree_utils", "get_root_tree"): "D7: exact root match (no prefix match)",
    ("proc_tree_builder", "build_process_tree"): "D7: zero-padded `source_index`",
    ("tiproviders.ti_provider_base", "LookupResult"): "D8: `severity` stores the value; `severity_name` right",
    ("tiproviders.ti_provider_base", "TIProvider"): "D8: async core, TTL cache, failures never cached",
    ("tiproviders.ti_provider_base", "TIPivotProvider"): "no pivot framework in secstream",
    ("tiproviders.http_base", "HttpProvider"): "D8: HTTP codes no longer leak into `Status`; module aliases "
    "`processors.tiproviders.http_provider`",
    ("tilookup", "TILookup"): "D8: providers from arguments/environment; empty result is a frame",
    ("tiproviders.virustotal", "VirusTotal"): "D8",
    ("vtlookup", "VTLookup"): "D9: `sha256_hash` works; one `Resource` column; rate limited",
    ("vtlookupv3", "VTLookupV3"): 'D10: no vt-py; reusable; "Not found" rows; graph via REST',
}


def _iter_table(names: list[SeedName]) -> Iterator[str]:
    """Yield the migration table: one row per module-level name, its members in the last column."""
    by_top: dict[tuple[str, str], list[SeedName]] = defaultdict(list)
    order: list[tuple[str, str]] = []
    for name in names:
        key = (name.module, name.top)
        if key not in by_top:
            order.append(key)
        by_top[key].append(name)
    current = ""
    for module, top in order:
        if module != current:
            current = module
            yield ""
            yield f"### `msticpy.sectools.{module}` → `{MODULE_MAP[module]}`"
            yield ""
            yield "| msticpy name | kind | secstream import | members | notes |"
            yield "|---|---|---|---|---|"
        entries = by_top[(module, top)]
        head = next((n for n in entries if n.member is None), None)
        kind = head.kind if head is not None else "class (members only)"
        members = sorted({n.member for n in entries if n.member and n.member not in INHERITED})
        inherited = any(n.member in INHERITED for n in entries)
        member_text = ", ".join(f"`{m}`" for m in members) + (" (+ inherited)" if inherited else "")
        target = NAME_OVERRIDES.get((module, top), MODULE_MAP[module])
        note = TABLE_NOTES.get((module, top), "")
        yield f"| `{top}` | {kind} | `from {target} import {top}` | {member_text} | {note} |"


def main(argv: list[str] | None = None) -> int:
    """Print counts (default) or the migration table (``--markdown``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the migration-guide table")
    parser.add_argument("--audit", action="store_true", help="print names not yet exposed and signature problems")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = parser.parse_args(argv)
    names = load_seed(args.shared)
    if args.markdown:
        print("\n".join(_iter_table(names)))
        return 0
    kept = counted(names)
    print(
        f"documented names: {len(names)} (counted {len(kept)}, "
        f"inherited tuple/exception members {len(names) - len(kept)})"
    )
    for module, count in Counter(n.module for n in kept).items():
        print(f"  {module:32} {count}")
    print("by kind:", dict(Counter(n.kind for n in kept)))
    if args.audit:
        missing, problems = audit(names)
        for module, items in sorted(missing.items()):
            print(f"\n{module}: {len(items)} missing")
            for item in items:
                print(f"    {item}")
        print(f"\n{len(problems)} signature/kind problems")
        for problem in problems:
            print(f"    {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
