"""The CLI's verbs register themselves: every verb module is listed, gives each of its
subcommands a handler, shows up in `gatewayd --help`, and answers its own ``--help`` without
importing what it runs."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import gatewayd.cli
from gatewayd.cli import check_config
from gatewayd.cli import main as cli_main
from gatewayd.cli.verb import Verb


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subparsers one level below ``parser``, by name, in the order they were added."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command path below ``parser`` (``("hub",)``, ``("hub", "status")``...)."""
    for name, sub in _subcommands(parser).items():
        yield (*prefix, name), sub
        yield from _paths(sub, (*prefix, name))


def _registered(verb: Verb) -> argparse.ArgumentParser:
    """A bare parser with only ``verb`` registered on it."""
    parser = argparse.ArgumentParser(prog="gatewayd")
    verb.register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


ALL_PATHS = [path for path, _ in _paths(cli_main.build_parser())]


def test_every_module_with_a_register_is_a_listed_verb() -> None:
    """A new verb module that main.py forgot to list would never be reachable."""
    with_register = set()
    for info in pkgutil.iter_modules(gatewayd.cli.__path__):
        module = importlib.import_module(f"gatewayd.cli.{info.name}")
        if callable(getattr(module, "register", None)):
            with_register.add(module.__name__)
    listed = [getattr(verb, "__name__", "") for verb in cli_main.verbs()]
    assert len(listed) == len(set(listed))
    assert with_register == set(listed)


@pytest.mark.parametrize("verb", cli_main.verbs(), ids=lambda v: getattr(v, "__name__", "?"))
def test_every_verb_gives_each_of_its_commands_a_handler(verb: Verb) -> None:
    paths = list(_paths(_registered(verb)))
    assert paths, "register() added no subcommand"
    leaves = [(path, sub) for path, sub in paths if not _subcommands(sub)]
    assert leaves
    for path, sub in leaves:
        assert callable(sub.get_default("handler")), f"{' '.join(path)} has no handler"
    # A group (`hub`, `sim`) has none of its own: without its subcommand the top help is shown.
    for path, sub in paths:
        if _subcommands(sub):
            assert sub.get_default("handler") is None, f"{' '.join(path)} is a group"


def test_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli_main.main(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    commands = shown.split("COMMAND\n", 1)[1].split("\noptions:", 1)[0]
    # An entry starts four spaces in; its wrapped help lines start further in.
    listed = re.findall(r"^ {4}(\S+)", commands, flags=re.MULTILINE)
    expected = [name for verb in cli_main.verbs() for name in _subcommands(_registered(verb))]
    assert listed == expected
    assert {"hub", "sim", "survey", "probe", "run", "check-config", "read-meter", "demo"} <= set(
        listed
    )


@pytest.mark.parametrize("path", ALL_PATHS, ids=" ".join)
def test_every_command_answers_its_own_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        cli_main.main([*path, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"usage: gatewayd {' '.join(path)} [-h]")
    assert out.err == ""
    # main() built only this verb's parser; the whole parser says the same.
    sub = cli_main.build_parser()
    for name in path:
        sub = _subcommands(sub)[name]
    assert out.out == sub.format_help()


@pytest.mark.parametrize("verb", cli_main.verbs(), ids=lambda v: getattr(v, "__name__", "?"))
def test_every_verb_adds_the_one_command_it_names(verb: Verb) -> None:
    """main() picks the verb to build by its COMMAND: register must add exactly that one."""
    assert list(_subcommands(_registered(verb))) == [verb.COMMAND]


def test_the_command_table_names_each_verb_module_by_its_command() -> None:
    """main() imports a verb's module by the command it adds, before it can ask the module."""
    found = {
        verb.COMMAND: getattr(verb, "__name__", "").rsplit(".", 1)[-1] for verb in cli_main.verbs()
    }
    assert found == cli_main.COMMANDS
    for command, module in cli_main.COMMANDS.items():
        assert [getattr(v, "__name__", "") for v in cli_main.verbs(command)] == [
            f"gatewayd.cli.{module}"
        ]


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["run", "--config", "kit.toml"], "run"),
        (["--log-level", "debug", "run", "--config", "kit.toml"], "run"),
        (["--log-level=DEBUG", "hub", "status"], "hub"),
        (["check-config", "--help"], "check-config"),
        # The whole parser answers these: only it knows every command and the top options.
        (["--help", "run"], None),
        (["--version"], None),
        (["--log", "DEBUG", "run"], None),
        (["--log-level"], None),
        ([], None),
    ],
)
def test_the_command_named_first_is_found_without_a_parser(
    argv: list[str], command: str | None
) -> None:
    assert cli_main.named_command(argv) == command


def test_an_unknown_command_is_refused_naming_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        cli_main.main(["frobnicate"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err
    for verb in cli_main.verbs():
        assert repr(verb.COMMAND) in err


@pytest.mark.parametrize("argv", [[], ["hub"], ["sim"]], ids=["nothing", "hub", "sim"])
def test_no_command_prints_the_top_help_and_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() routes the root logger to stderr; the test process keeps its own logging.
    monkeypatch.setattr(cli_main, "configure_logging", lambda *a, **k: None)
    assert cli_main.main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == cli_main.build_parser().format_help()


def test_main_calls_the_chosen_verb_with_the_parsed_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[object, ...]] = []

    def main_check_config(paths: list[Path], kind: str, *, strict: bool) -> int:
        seen.append((paths, kind, strict))
        return 7

    monkeypatch.setattr(cli_main, "configure_logging", lambda *a, **k: None)
    monkeypatch.setattr(check_config, "main_check_config", main_check_config)
    assert cli_main.main(["check-config", "--kind", "job", "--strict", "a.toml", "b.toml"]) == 7
    assert seen == [([Path("a.toml"), Path("b.toml")], "job", True)]


# What no parser and no help text needs, and every command would otherwise pay for: the
# libraries the verbs run with, the drivers, the simulators, the daemon and the demo.
HEAVY = (
    "pydantic",
    "pydantic_core",
    "aiomqtt",
    "paho",
    "serialx",
    "rich",
    "sqlite3",
    "prometheus_client",
    "amqtt",
    "gatewayd_drivers",
    "gatewayd_sim",
    "gatewayd.daemon",
    "gatewayd.demo",
)


def _fresh(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``python -X importtime ARGS`` in a new interpreter: its result and what it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=60
    )
    rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = [row[-1].strip() for row in rows if len(row) == 3]
    return done, [name for name in imported if name != "imported package"]


def _heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


@pytest.mark.parametrize("path", [(), *ALL_PATHS], ids=lambda p: " ".join(("gatewayd", *p)))
def test_help_imports_nothing_a_verb_runs_with(path: tuple[str, ...]) -> None:
    """`gatewayd [COMMAND] --help` builds the whole parser, as every command does."""
    done, imported = _fresh("-m", "gatewayd", *path, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {' '.join(('gatewayd', *path))} [-h]")
    assert "gatewayd.cli.main" in imported
    assert _heavy(imported) == []


# The console script's own entry (pyproject's [project.scripts]), then every module loaded.
_CONSOLE_SCRIPT = """
import sys
from gatewayd.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [("--help",), ("run", "--help")], ids=" ".join)
def test_help_leaves_the_libraries_out_of_sys_modules(args: tuple[str, ...]) -> None:
    """What the interpreter holds once `gatewayd --help` or `gatewayd run --help` answered:
    none of the libraries, however they came to be imported."""
    done = subprocess.run(
        [sys.executable, "-c", _CONSOLE_SCRIPT, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {' '.join(('gatewayd', *args[:-1]))} [-h]")
    loaded = done.stderr.splitlines()[-1].split()
    assert "gatewayd.cli.main" in loaded
    for library in ("pydantic", "aiomqtt", "paho", "serialx", "serial", "serial_asyncio_fast"):
        assert library not in loaded
    assert _heavy(loaded) == []


def test_the_run_verb_loads_the_daemon_only_when_it_runs() -> None:
    done, imported = _fresh("-c", "import gatewayd.cli.run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gatewayd.cli.run" in imported
    assert _heavy(imported) == []
