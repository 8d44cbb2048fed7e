"""Configuration: documented defaults, environment overrides and validation that names the key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from processors.errors import ConfigError
from streams.config import SecstreamConfig, bundled_config_dir, load_config


class TestLoadConfig:
    def test_documented_file_matches_defaults(self) -> None:
        """config/secstream.toml documents exactly the built-in defaults."""
        documented = load_config(bundled_config_dir() / "secstream.toml", environ={})
        assert replace(documented, config_dir=Path()) == replace(SecstreamConfig(), config_dir=Path())

    def test_no_file_gives_defaults(self) -> None:
        """Without a file and environment, the defaults apply."""
        assert load_config(environ={}) == SecstreamConfig()

    def test_unknown_key_is_named(self, tmp_path: Path) -> None:
        """An unknown key is an error that names the key."""
        path = tmp_path / "c.toml"
        path.write_text("[coalescer]\nevent_timeout = 3\n")
        with pytest.raises(ConfigError, match=r"coalescer\.event_timeout: unknown key"):
            load_config(path, environ={})

    def test_unknown_section_is_named(self, tmp_path: Path) -> None:
        """An unknown section is an error that names it."""
        path = tmp_path / "c.toml"
        path.write_text("[coalesce]\nevent_timeout_s = 3\n")
        with pytest.raises(ConfigError, match=r"^coalesce: unknown key"):
            load_config(path, environ={})

    def test_wrong_type_is_named(self, tmp_path: Path) -> None:
        """A value of the wrong type is an error naming the key and the value."""
        path = tmp_path / "c.toml"
        path.write_text('[worker]\nbatch_size = "many"\n')
        with pytest.raises(ConfigError, match=r"worker\.batch_size: expected an integer, got 'many'"):
            load_config(path, environ={})

    def test_out_of_range_value_is_named(self) -> None:
        """A value outside its range is an error naming the key."""
        with pytest.raises(ConfigError, match=r"worker\.processing_guarantee"):
            load_config(environ={"SECSTREAM_WORKER__PROCESSING_GUARANTEE": "at_most_once"})
        with pytest.raises(ConfigError, match=r"worker\.processes: must not be negative"):
            load_config(environ={"SECSTREAM_WORKER__PROCESSES": "-1"})

    def test_invalid_toml_is_reported(self, tmp_path: Path) -> None:
        """A file that is not TOML gives a clear error, not a traceback."""
        path = tmp_path / "c.toml"
        path.write_text("[worker\n")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(path, environ={})

    def test_missing_file_is_reported(self, tmp_path: Path) -> None:
        """A configuration file that does not exist is a clear error."""
        with pytest.raises(ConfigError, match="does not exist"):
            load_config(tmp_path / "nope.toml", environ={})


class TestEnvironmentOverrides:
    def test_env_overrides_file(self, tmp_path: Path) -> None:
        """SECSTREAM_<SECTION>__<KEY> overrides the file, with type conversion."""
        path = tmp_path / "c.toml"
        path.write_text("[worker]\nbatch_size = 10\n")
        config = load_config(
            path, environ={"SECSTREAM_WORKER__BATCH_SIZE": "20", "SECSTREAM_ENRICHMENT__ENABLED": "no"}
        )
        assert config.worker.batch_size == 20
        assert config.enrichment.enabled is False

    def test_nested_provider_override_keeps_provider_defaults(self) -> None:
        """Setting a provider's key from the environment keeps that provider's other defaults."""
        config = load_config(environ={"SECSTREAM_ENRICHMENT__VIRUSTOTAL__API_KEY": "k"})
        assert config.enrichment.virustotal.api_key == "k"
        assert config.enrichment.virustotal.rate_per_minute == 4

    def test_secrets_are_not_in_repr(self) -> None:
        """API keys and passwords never appear in the configuration's repr (and so in logs)."""
        config = load_config(
            environ={"SECSTREAM_ENRICHMENT__OTX__API_KEY": "sekrit-otx", "SECSTREAM_KAFKA__SASL_PASSWORD": "sekrit-pw"}
        )
        assert "sekrit" not in repr(config)

    def test_list_from_env(self, tmp_path: Path) -> None:
        """List settings accept comma-separated values from the environment."""
        first, second = tmp_path / "a.toml", tmp_path / "b.json"
        first.write_text("")
        second.write_text("{}")
        config = load_config(environ={"SECSTREAM_DETECTION__RULE_FILES": f"{first},{second}"})
        assert config.detection.rule_files == (str(first), str(second))


class TestResolvePath:
    def test_relative_paths_fall_back_to_bundled(self, tmp_path: Path) -> None:
        """A relative path not beside the user's file resolves into the bundled config directory."""
        path = tmp_path / "c.toml"
        path.write_text("")
        config = load_config(path, environ={})
        assert config.resolve_path("secstream.toml") == bundled_config_dir() / "secstream.toml"

    def test_relative_paths_beside_the_file_win(self, tmp_path: Path) -> None:
        """A relative path that exists beside the user's file resolves there."""
        (tmp_path / "rules.toml").write_text("")
        path = tmp_path / "c.toml"
        path.write_text("")
        assert load_config(path, environ={}).resolve_path("rules.toml") == tmp_path / "rules.toml"
