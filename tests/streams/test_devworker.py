"""Development deployments: the configuration file a worker of a deployment reads."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from streams.config import load_config
from streams.dev.deployment import ConfigValue, DevDeployment, to_toml

_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
_values: st.SearchStrategy[ConfigValue] = st.one_of(
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.text(), max_size=3),
)


class TestToToml:
    @given(st.dictionaries(_names, st.dictionaries(_names, _values, max_size=4), max_size=4))
    def test_round_trip(self, tables: dict[str, dict[str, ConfigValue]]) -> None:
        """Whatever strings, numbers, booleans and string lists hold, TOML reads back the same tables."""
        assert tomllib.loads(to_toml(tables)) == tables


class TestDevDeployment:
    def test_config_file_loads(self, tmp_path: Path) -> None:
        """The written file is a valid worker configuration with the deployment's names and settings."""
        dep = DevDeployment(
            "127.0.0.1:9092",
            tmp_path,
            prefix="it",
            partitions=3,
            settings={"coalescer": {"idle_flush_s": 30.0}, "worker": {"batch_size": 200}},
        )
        config = load_config(dep.config_path(web_port=6067))
        assert config.kafka.broker == "kafka://127.0.0.1:9092"
        assert config.topics.raw_auditd == dep.raw_auditd == f"it.raw.auditd.{dep.tag}"
        assert config.topics.deadletter == f"it.deadletter.{dep.tag}"
        assert config.topics.partitions == 3
        assert config.worker.app_id == f"it-{dep.tag}"
        assert config.worker.web_port == 6067
        assert config.worker.batch_size == 200
        assert config.worker.session_timeout_s == 6.0  # the deployment's own value, kept beside the override
        assert config.coalescer.idle_flush_s == 30.0

    def test_settings_changed_later_reach_the_next_file(self, tmp_path: Path) -> None:
        """A setting changed after the first worker started is in the configuration of the next one."""
        dep = DevDeployment("127.0.0.1:9092", tmp_path, settings={"coalescer": {"idle_flush_s": 30.0}})
        first = load_config(dep.config_path(1))
        dep.settings["coalescer"]["idle_flush_s"] = 2.0
        assert first.coalescer.idle_flush_s == 30.0
        assert load_config(dep.config_path(2)).coalescer.idle_flush_s == 2.0

    def test_two_deployments_share_no_names(self, tmp_path: Path) -> None:
        """Two deployments on one broker have no topic or app id in common."""
        one, two = DevDeployment("b:1", tmp_path), DevDeployment("b:1", tmp_path)
        assert not {*one.topics, one.app_id} & {*two.topics, two.app_id}
