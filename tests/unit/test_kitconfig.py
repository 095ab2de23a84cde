"""The kit config: defaults, hubs, van variants, timings, and readable errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gatewayd.config.errors import MAX_DOTS_PER_LINE, ConfigError
from gatewayd.config.job import TimingOverrides
from gatewayd.config.kit import LSP_GIVE_UP_S, KitConfig, load_kit_config, parse_kit_config
from gatewayd.engine.meter_type import ElectricityVariant

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kit.toml"
MINIMAL: dict[str, Any] = {"hub": {"port": "/dev/ttyUSB0"}}


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_kit_config(doc, source="kit.toml")
    return {p.path: p.reason for p in info.value.problems}


def test_a_minimal_file_gets_sane_defaults(tmp_path: Path) -> None:
    path = tmp_path / "kit.toml"
    path.write_text('[hub]\nport = "/dev/ttyUSB0"\n', encoding="utf-8")
    kit = load_kit_config(path)
    assert kit.default_hub.port == "/dev/ttyUSB0"
    assert kit.default_hub.name == "hub"
    assert kit.default_hub.baudrate == 115_200
    assert set(kit.van.electricity_variants) == set(ElectricityVariant)
    assert kit.wan.deadline_s == 1800
    assert kit.han.join_window_s <= kit.han.deadline_s
    assert kit.time_scale == 1.0


def test_the_example_kit_config_loads_and_matches_the_defaults() -> None:
    kit = load_kit_config(EXAMPLE)
    defaults = parse_kit_config({"hub": kit.default_hub.model_dump()})
    assert kit == defaults


def test_several_hubs_by_name() -> None:
    kit = parse_kit_config(
        {"hubs": [{"name": "left", "port": "/dev/a"}, {"name": "right", "port": "/dev/b"}]}
    )
    assert [h.name for h in kit.all_hubs] == ["left", "right"]
    assert kit.default_hub.name == "left"
    assert kit.hub_named("right").port == "/dev/b"
    with pytest.raises(KeyError, match="known: left, right"):
        kit.hub_named("middle")


@pytest.mark.parametrize(
    ("doc", "path", "reason"),
    [
        ({}, "hub", "required"),
        ({"hub": {"port": "/dev/a"}, "hubs": [{"port": "/dev/b"}]}, "hubs", "not both"),
        ({"hub": {}}, "hub.port", "required key is missing"),
        ({"hub": {"port": ""}}, "hub.port", "at least 1 character"),
        ({"hub": {"port": "/dev/a", "name": "kit hub"}}, "hub.name", "metric label"),
        ({"hub": {"port": "/dev/a", "baudrate": 0}}, "hub.baudrate", "greater than 0"),
        (
            {"hubs": [{"name": "a", "port": "/dev/a"}, {"name": "a", "port": "/dev/b"}]},
            "hubs[1].name",
            "already the name of hubs[0]",
        ),
        (
            {**MINIMAL, "van": {"electricity_variants": ["single_phase", "ct"]}},
            "van.electricity_variants",
            "no SMETS meter exists",
        ),
        (
            {**MINIMAL, "van": {"electricity_variants": ["polyphase", "polyphase"]}},
            "van.electricity_variants",
            "twice",
        ),
        (
            {**MINIMAL, "van": {"electricity_variants": ["three_phase"]}},
            "van.electricity_variants[0]",
            "'three_phase'",
        ),
        ({**MINIMAL, "wan": {"deadline_s": -5}}, "wan.deadline_s", "greater than 0"),
        ({**MINIMAL, "wan": {"deadline_s": 10**6}}, "wan.deadline_s", "less than or equal"),
        ({**MINIMAL, "wan": {"max_reconnects": -1}}, "wan.max_reconnects", "greater than or"),
        ({**MINIMAL, "han": {"join_window_s": 4000}}, "han.join_window_s", "3600"),
        ({**MINIMAL, "han": {"deadline_s": 60}}, "han.deadline_s", "shorter than join_window"),
        ({**MINIMAL, "han": {"join_attempts": 0}}, "han.join_attempts", "greater than or"),
        ({**MINIMAL, "poll": {"jitter": 2}}, "poll.jitter", "less than 1"),
        (
            {**MINIMAL, "poll": {"first_interval_s": 60}},
            "poll.max_interval_s",
            "shorter than first_interval_s",
        ),
        ({**MINIMAL, "time_scale": 0}, "time_scale", "greater than 0"),
        ({**MINIMAL, "poll": {"attempt_timeout_s": 1}}, "poll.attempt_timeout_s", "3 s give-up"),
        ({**MINIMAL, "time_scale": 50}, "poll.attempt_timeout_s", "use at least 150"),
        ({**MINIMAL, "wan": {"deadline": 5}}, "wan.deadline", "known keys: deadline_s"),
        ({**MINIMAL, "vans": {}}, "vans", "unknown key"),
    ],
)
def test_bad_kit_configs_are_named_with_a_reason(
    doc: dict[str, Any], path: str, reason: str
) -> None:
    found = problems(doc)
    assert path in found, found
    assert reason in found[path]


def test_a_scaled_simulation_works_with_a_long_enough_attempt_timeout() -> None:
    kit = parse_kit_config(
        {**MINIMAL, "time_scale": 50, "poll": {"attempt_timeout_s": 50 * LSP_GIVE_UP_S}}
    )
    assert kit.time_scale == 50


def test_an_empty_van_is_allowed() -> None:
    kit = parse_kit_config({**MINIMAL, "van": {"electricity_variants": []}})
    assert kit.van.electricity_variants == ()


def test_timing_without_overrides_is_the_kits() -> None:
    kit = parse_kit_config(
        {**MINIMAL, "wan": {"deadline_s": 1200}, "poll": {"first_interval_s": 3}}
    )
    timing = kit.timing()
    assert timing.wan.deadline_s == 1200
    assert timing.han.deadline_s == kit.han.deadline_s
    assert timing.wan.first_interval_s == 3
    assert timing.join_window_s == kit.han.join_window_s
    assert timing.max_reconnects == kit.wan.max_reconnects


def test_job_overrides_replace_only_what_they_give() -> None:
    kit = KitConfig.model_validate(MINIMAL)
    timing = kit.timing(TimingOverrides(wan_deadline_s=600, join_attempts=5))
    assert timing.wan.deadline_s == 600
    assert timing.join_attempts == 5
    assert timing.han.deadline_s == kit.han.deadline_s
    assert timing.join_window_s == kit.han.join_window_s


def test_overrides_that_break_the_join_window_rule_together_are_refused() -> None:
    kit = parse_kit_config({**MINIMAL, "han": {"join_window_s": 300, "deadline_s": 900}})
    with pytest.raises(ConfigError, match=r"job\.toml: timing: HAN deadline 200 s"):
        kit.timing(TimingOverrides(han_deadline_s=200), source="job.toml")


def test_errors_list_every_problem_without_library_noise(tmp_path: Path) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(
        '[hub]\nname = "a b"\nport = ""\n[poll]\njitter = 3\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_kit_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "errors.pydantic.dev" not in str(info.value)


def test_permission_denied_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "kit.toml"
    path.write_text("[hub]\n", encoding="utf-8")
    path.chmod(0)
    if os.access(path, os.R_OK):  # running as root: permissions are not enforced
        pytest.skip("file permissions are not enforced for this user")
    with pytest.raises(ConfigError, match="permission denied"):
        load_kit_config(path)


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 100_000,
        "a = " + "[" * 5_000 + "]" * 5_000,
        "a = " + "{b = " * 5_000 + "1" + "}" * 5_000,
        '[hub]\nport = "/dev/ttyUSB0"\n[van]\nelectricity_variants = [\n' + "[\n" * 5_000,
    ],
    ids=["arrays-unclosed", "arrays", "inline-tables", "arrays-over-lines"],
)
def test_arrays_or_inline_tables_nested_too_deeply_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_kit_config(path)
    assert str(info.value) == (
        f"{path}: (top level): invalid TOML: arrays or inline tables nest too deeply"
    )


@pytest.mark.parametrize(
    "text",
    [
        ".".join(["a"] * 20_000) + " = 1\n",
        '[hub]\nport = "/dev/ttyUSB0"\n' + ".".join(['"a"'] * 20_000) + " = 1\n",
        "[" + ".".join(["a"] * 20_000) + "]\n",
        "x = {" + ".".join(["a"] * 20_000) + " = 1}\n",
    ],
    ids=["dotted-key", "quoted-parts", "table-header", "in-inline-table"],
)
def test_dotted_keys_nested_too_deeply_are_refused(tmp_path: Path, text: str) -> None:
    # tomllib's time grows with the square of a key's parts: refused before it starts.
    path = tmp_path / "kit.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_kit_config(path)
    line = text.count("\n", 0, text.index(".")) + 1
    assert str(info.value) == (
        f"{path}: (top level): invalid TOML: line {line} has 19999 dots, more than the "
        f"{MAX_DOTS_PER_LINE} a line may have: its keys nest too deeply"
    )


def test_dots_are_capped_per_line_and_comments_are_not_counted(tmp_path: Path) -> None:
    deepest = ".".join(["a"] * (MAX_DOTS_PER_LINE + 1))
    path = tmp_path / "kit.toml"
    path.write_text(
        '[hub]\nport = "/dev/ttyUSB0"\n'
        + "# "
        + "." * 1000
        + "\n"
        + "  #"
        + "." * 1000
        + f"\n[{deepest}]\n{deepest} = 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_kit_config(path)
    # Read as TOML, and refused only for the key it does not know.
    assert [p.path for p in info.value.problems] == ["a"]
