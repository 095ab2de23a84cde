"""Every test checks something: a guard against tests that only run code.

A test passes when nothing raises, so a test with no assertion passes whatever the code
does. This reads every test module's syntax tree and lists the test functions that assert
nothing, neither themselves nor through a helper.

What counts as asserting: an ``assert`` statement; ``pytest.raises``, ``warns``, ``fail``
or ``deprecated_call``; a call of anything named ``assert_*`` or ``expect_*``; a call by
bare name of a function of the same module (or imported from ``tests``) that asserts in
one of those ways, however deep. Method calls do not count: a fixture object's method
may assert only that its own plumbing worked (the bytes were written, the frame was
OK), which says nothing of the behaviour the test names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ASSERTING_CALLS = frozenset({"raises", "warns", "fail", "deprecated_call"})
HELPER_PREFIXES = ("assert_", "expect_")

Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class Module:
    """One source file's top-level functions and the names it imports from ``tests``."""

    functions: dict[str, Function] = field(default_factory=dict)
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (module, name)


def _module_name(path: Path, root: Path) -> str:
    return ".".join((root.name, *path.relative_to(root).with_suffix("").parts))


def _read(root: Path) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module = Module()
        for node in tree.body:
            if isinstance(node, Function):
                module.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, Function) and item.name.startswith("test"):
                        module.functions[f"{node.name}.{item.name}"] = item
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(root.name):
                for alias in node.names:
                    module.imported[alias.asname or alias.name] = (str(node.module), alias.name)
        modules[_module_name(path, root)] = module
    return modules


def _called_name(call: ast.Call) -> tuple[str, bool]:
    """The called name, and whether it was called bare (not as an attribute)."""
    if isinstance(call.func, ast.Name):
        return call.func.id, True
    if isinstance(call.func, ast.Attribute):
        return call.func.attr, False
    return "", False


class _Scan:
    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self._seen: dict[tuple[str, str], bool] = {}

    def asserts(self, module: str, name: str) -> bool:
        key = (module, name)
        if key not in self._seen:
            self._seen[key] = False  # a helper that recurses into itself asserts nothing new
            self._seen[key] = self._body_asserts(module, self.modules[module].functions[name])
        return self._seen[key]

    def _body_asserts(self, module: str, function: Function) -> bool:
        for node in ast.walk(function):
            if isinstance(node, ast.Assert):
                return True
            if not isinstance(node, ast.Call):
                continue
            name, bare = _called_name(node)
            if name in ASSERTING_CALLS or name.startswith(HELPER_PREFIXES):
                return True
            if bare and self._helper_asserts(module, name):
                return True
        return False

    def _helper_asserts(self, module: str, name: str) -> bool:
        here = self.modules[module]
        if name in here.functions:
            return self.asserts(module, name)
        if name in here.imported:
            source, original = here.imported[name]
            if source in self.modules and original in self.modules[source].functions:
                return self.asserts(source, original)
        return False


def assertionless_tests(root: Path) -> list[str]:
    """``file:line: name`` of each test function under ``root`` that asserts nothing."""
    modules = _read(root)
    scan = _Scan(modules)
    found = []
    for module_name, module in modules.items():
        if not module_name.rsplit(".", 1)[-1].startswith("test_"):
            continue
        for name, function in module.functions.items():
            if name.rsplit(".", 1)[-1].startswith("test") and not scan.asserts(module_name, name):
                path = Path(*module_name.split(".")).with_suffix(".py")
                found.append(f"{path}:{function.lineno}: {name}")
    return found


def test_every_test_in_the_suite_asserts_something() -> None:
    assert assertionless_tests(TESTS) == []


PLANTED = """
import pytest
from tests.helpers import check_twice


def helper_that_checks(x):
    assert x


def helper_that_calls_a_helper(x):
    helper_that_checks(x)


def helper_that_only_runs(x):
    return x + 1


def test_runs_only():
    helper_that_only_runs(1)


async def test_awaits_only(client):
    await client.ping()


def test_only_a_method_that_asserts_inside(hub):
    hub.respond()


def test_asserts():
    assert 1


def test_raises():
    with pytest.raises(ValueError):
        int("x")


def test_named_helper(hub):
    hub.expect_event(3)


def test_local_helper():
    helper_that_calls_a_helper(1)


def test_imported_helper():
    check_twice(1)


class TestGroup:
    def test_in_a_class_without_assert(self):
        helper_that_only_runs(1)
"""


def test_the_guard_tells_tests_that_assert_from_tests_that_only_run(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    root.mkdir()
    (root / "helpers.py").write_text("def check_twice(x):\n    assert x\n    assert x\n")
    (root / "test_planted.py").write_text(PLANTED)
    found = [line.rsplit(": ", 1)[1] for line in assertionless_tests(root)]
    assert found == [
        "test_runs_only",
        "test_awaits_only",
        "test_only_a_method_that_asserts_inside",
        "TestGroup.test_in_a_class_without_assert",
    ]
