"""Configuration: documented defaults, environment overrides and validation that names the key."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import pytest

from processors.errors import ConfigError
from streams.config import (
    SecstreamConfig,
    bundled_config_dir,
    coalescer_settings,
    command_speed_settings,
    enricher_settings,
    load_config,
    risky_sudo_settings,
    sessions_settings,
    tracker_settings,
)


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


# Settings fields the configuration does not expose on purpose, with the reason.
_NOT_CONFIGURABLE = {
    ("EnricherSettings", "rate_limit_wait_s"): "in the stream a lookup never waits for its rate limiter",
    ("EnricherSettings", "providers"): "the providers are the ones [enrichment.*] enables",
    ("EnricherSettings", "ioc_types"): "every IoC type the extractor finds is looked up",
    ("EnricherSettings", "geo_fields"): "source and destination are the ECS objects with addresses",
    ("EnricherSettings", "max_detail_string"): "strings inside a provider's detail are cut at a fixed length",
}
_STAGE_BUILDERS = (
    coalescer_settings,
    tracker_settings,
    sessions_settings,
    command_speed_settings,
    risky_sudo_settings,
    enricher_settings,
)
_NOT_STAGE_KEYS = {"rule_files", "use_default_rules", "enabled", "cache_ttl_s", "negative_cache_ttl_s"}


def _changed(value: object) -> object:
    """A valid value different from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 1.5
    if isinstance(value, tuple):
        return [*value, "T0000"]
    raise AssertionError(f"no changed value for {value!r}")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(f'"{item}"' for item in value) + "]"
    return repr(value)


def _every_stage_key_changed() -> str:
    """TOML that sets every scalar key of the sections feeding stage settings to a non-default value."""
    defaults = SecstreamConfig()
    lines = []
    sections = [
        ("coalescer", defaults.coalescer),
        ("proctree", defaults.proctree),
        ("sessions", defaults.sessions),
        ("detection", defaults.detection),
        ("detection.sudo", defaults.detection.sudo),
        ("enrichment", defaults.enrichment),
    ]
    for name, section in sections:
        lines.append(f"[{name}]")
        for spec in dataclasses.fields(section):
            value = getattr(section, spec.name)
            if spec.name in _NOT_STAGE_KEYS or dataclasses.is_dataclass(value) or isinstance(value, str):
                continue
            if name == "enrichment" and spec.name == "blocklists":
                continue
            lines.append(f"{spec.name} = {_toml_value(_changed(value))}")
    return "\n".join(lines) + "\n"


class TestStageSettings:
    def test_every_settings_field_is_reachable_from_the_toml(self, tmp_path: Path) -> None:
        """Changing every key changes every field of every stage's settings (bar the listed exceptions)."""
        path = tmp_path / "all.toml"
        path.write_text(_every_stage_key_changed())
        config = load_config(path, environ={})
        for build in _STAGE_BUILDERS:
            settings = build(config)
            default = type(settings)()
            for spec in dataclasses.fields(settings):
                key = (type(settings).__name__, spec.name)
                if key in _NOT_CONFIGURABLE:
                    continue
                assert getattr(settings, spec.name) != getattr(default, spec.name), key

    def test_defaults_come_from_the_settings_classes(self) -> None:
        """With no configuration, every builder gives exactly its stage's own defaults."""
        config = load_config(environ={})
        for build in _STAGE_BUILDERS:
            settings = build(config)
            assert settings == type(settings)(), build.__name__

    def test_risky_sudo_is_configurable(self, tmp_path: Path) -> None:
        path = tmp_path / "sudo.toml"
        path.write_text('[detection.sudo]\nservices = ["doas"]\ncommand_severity = 99\n')
        settings = risky_sudo_settings(load_config(path, environ={}))
        assert settings.services == ("doas",)
        assert settings.command_severity == 99


class TestRangeChecks:
    @pytest.mark.parametrize(
        ("environ", "key"),
        [
            ({"SECSTREAM_ENRICHMENT__OTX__RATE_PER_MINUTE": "-1"}, "enrichment.otx.rate_per_minute"),
            ({"SECSTREAM_ENRICHMENT__OTX__TIMEOUT_S": "-1"}, "enrichment.otx.timeout_s"),
            ({"SECSTREAM_ENRICHMENT__OTX__BASE_URL": "not-a-url"}, "enrichment.otx.base_url"),
            ({"SECSTREAM_SESSIONS__MAX_PER_HOST": "0"}, "sessions.max_per_host"),
            ({"SECSTREAM_COALESCER__EVENT_TIMEOUT_S": "inf"}, "coalescer.event_timeout_s"),
            ({"SECSTREAM_PROCTREE__IDLE_TTL_S": "nan"}, "proctree.idle_ttl_s"),
            ({"SECSTREAM_COALESCER__MAX_IN_FLIGHT": str(2**64)}, "coalescer.max_in_flight"),
            ({"SECSTREAM_INPUT__SYSLOG_YEAR": "10000"}, "input.syslog_year"),
            ({"SECSTREAM_DETECTION__SUDO__COMMAND_SEVERITY": "101"}, "detection.sudo.command_severity"),
            ({"SECSTREAM_DETECTION__RULE_FILES": "/nonexistent/rules.toml"}, "detection.rule_files[0]"),
            ({"SECSTREAM_ENRICHMENT__GEOIP_DB_FOLDER": "/nonexistent"}, "enrichment.geoip_db_folder"),
        ],
    )
    def test_bad_value_is_one_error_naming_the_key(self, environ: dict[str, str], key: str) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config(environ=environ)
        assert caught.value.key == key
        assert "\n" not in str(caught.value)

    def test_inf_in_the_file_is_rejected(self, tmp_path: Path) -> None:
        path = tmp_path / "inf.toml"
        path.write_text("[coalescer]\nevent_timeout_s = inf\n")
        with pytest.raises(ConfigError, match=r"coalescer\.event_timeout_s: expected a finite number"):
            load_config(path, environ={})

    def test_a_directory_is_not_a_config_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="is a directory"):
            load_config(tmp_path, environ={})
