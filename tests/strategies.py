"""Reusable Hypothesis strategies for hostile input: extreme times, integers, lengths, encodings and
digits that are not ASCII, and audit lines built from them."""

from __future__ import annotations

from hypothesis import strategies as st

#: Digits that ``int()`` and ``str.isdecimal()`` accept but that no audit writer produces.
NON_ASCII_DIGITS = "٣۳३৩௩๓໓༣၃០᠓１𝟑"

#: Event times: ordinary, the edges of the representable range, and past the year 9999.
extreme_times = st.one_of(
    st.sampled_from(["0.000", "1.000", "1700000000.123", "253402300799.999", "253402300800.000", "999999999999.999"]),
    st.builds(
        lambda seconds, fraction: f"{seconds}.{fraction}",
        st.integers(0, 10**12 - 1),
        st.integers(0, 10**9 - 1),
    ),
)

#: Integers around every width a reader might assume (32, 63, 64 bits) and beyond, as text.
extreme_int_text = st.one_of(
    st.sampled_from(
        [str(n) for n in (0, 1, -1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64)]
        + ["-9999999999999999999", "18446744073709551616", "99999999999999999999"]
    ),
    st.integers(-(2**70), 2**70).map(str),
)

#: Numbers written with digits that are not ASCII (``pid=٣``).
non_ascii_numbers = st.text(alphabet=NON_ASCII_DIGITS, min_size=1, max_size=4)

#: Serials as the header carries them: up to 20 ASCII digits, around the 64-bit edge.
extreme_serials = st.one_of(
    st.integers(0, 2**64 + 10),
    st.sampled_from([2**64 - 1, 2**64, 10**20 - 1]),
)

#: Node names: plain, odd characters, non-ASCII, the ENRICHED separator, very long.
node_names = st.one_of(
    st.sampled_from(["h1", "web-01.example", "dé", "h\x1dx", "a" * 300, "ü" * 3, "h\x85", "h\xa0"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=" \t\n\r\x0b\x0c"), max_size=12),
)


@st.composite
def audit_headers(draw: st.DrawFn) -> str:
    """An audit header, valid or nearly so: node, type, time and serial drawn from the extremes."""
    node = draw(st.one_of(st.none(), node_names))
    rtype = draw(st.sampled_from(["SYSCALL", "USER_LOGIN", "EOE", "PATH", "T", "ü", "X\x1dY"]))
    time = draw(st.one_of(extreme_times, st.sampled_from(["1.", ".5", "1:2", "٣.1", "1.٣"])))
    serial = draw(st.one_of(extreme_serials.map(str), non_ascii_numbers, st.just("")))
    lead = draw(st.sampled_from(["", " ", "\t", "  \t"]))
    prefix = "" if node is None else f"node={node} "
    return f"{lead}{prefix}type={rtype} msg=audit({time}:{serial}):"


@st.composite
def hostile_audit_lines(draw: st.DrawFn) -> str:
    """A whole audit line: a hostile header and fields with extreme integers and non-ASCII digits."""
    header = draw(audit_headers())
    number = st.one_of(extreme_int_text, non_ascii_numbers)
    fields = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["pid", "ppid", "uid", "auid", "ses", "exit", "syscall", "arch", "argc", "item"]),
                number,
            ),
            max_size=6,
        )
    )
    body = " ".join(f"{key}={value}" for key, value in fields)
    return f"{header} {body}"
