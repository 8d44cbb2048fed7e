"""The readers of fields that output contract 2.0 moved: the new place first, the decoder's old one after."""

from __future__ import annotations

from processors.document import audit_user, syslog_details


def test_audit_user_reads_the_secstream_namespace_first() -> None:
    """secstream.user.audit (contract 2.0) wins over user.audit (what the audit decoder still writes)."""
    moved = {"secstream": {"user": {"audit": {"id": "1000"}}}, "user": {"audit": {"id": "0"}}}
    assert audit_user(moved) == {"id": "1000"}
    assert audit_user({"user": {"audit": {"id": "1001", "name": "bob"}}}) == {"id": "1001", "name": "bob"}
    assert audit_user({"user": {"id": "0"}}) == {}
    assert audit_user({"user": {"audit": "1001"}}) == {}


def test_syslog_details_are_under_secstream() -> None:
    """Syslog interpretation's details are secstream.syslog; a top-level syslog object is not read."""
    assert syslog_details({"secstream": {"syslog": {"command": "/bin/id"}}}) == {"command": "/bin/id"}
    assert syslog_details({"syslog": {"command": "/bin/id"}}) == {}
    assert syslog_details({"secstream": {"syslog": ["x"]}}) == {}
