"""The floors of the code: each package imports only from the floors below it.

The installed package `derelay` is built in floors (README, "Layout"): `trainer` is the worker's
core, `deploy` compiles and publishes, `lab` runs relays for study, `dashboard` serves the web
view, `cli` is the command on top. `bench` and `tests` live outside the package, and the package
never imports them. Every import statement is read (ast), lazy ones inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What each floor may import from this repository (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "derelay.trainer": frozenset(),
    "derelay.deploy": frozenset({"derelay.trainer"}),
    "derelay.lab": frozenset({"derelay.trainer", "derelay.deploy"}),
    "derelay.dashboard": frozenset({"derelay.trainer", "derelay.deploy"}),
    "derelay.cli": frozenset(
        {"derelay.trainer", "derelay.deploy", "derelay.lab", "derelay.dashboard"}
    ),
    "bench": frozenset({"derelay.trainer", "derelay.deploy", "derelay.lab"}),
}
FLOORS = tuple(ALLOWED)
OURS = ("derelay", "bench", "tests")


def floor_of(module: str) -> str | None:
    """The floor `module` belongs to, or None for the package root and outside modules."""
    return next((f for f in FLOORS if module == f or module.startswith(f + ".")), None)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(text: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every import in `text`, the source of `module`, relative ones resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            if node.module is None:
                found += [(node.lineno, ".".join([*base, alias.name])) for alias in node.names]
            else:
                found.append((node.lineno, ".".join([*base, node.module])))
    return found


def violations(text: str, module: str, is_package: bool = False) -> list[str]:
    """Each import of `module` (source `text`) that reaches a floor it may not."""
    floor = floor_of(module)
    if floor is None:
        return []
    allowed = ALLOWED[floor] | {floor}
    return [
        f"{module}:{line} -> {target}"
        for line, target in imported_modules(text, module, is_package)
        if target.split(".")[0] in OURS and target != "derelay" and floor_of(target) not in allowed
    ]


def sources() -> list[Path]:
    return sorted(p for top in ("derelay", "bench") for p in (REPO / top).rglob("*.py"))


def test_every_module_belongs_to_a_floor():
    # check: a new folder gets a line in ALLOWED (and in README's layout) before code lands in it
    homeless = [
        str(p.relative_to(REPO))
        for p in sources()
        if floor_of(module_name(p)) is None and p.parent not in (REPO / "derelay", REPO / "bench")
    ]
    assert homeless == []


@pytest.mark.parametrize("floor", FLOORS)
def test_imports_go_down_the_floors_only(floor):
    # prepare: every module of this floor
    paths = [p for p in sources() if floor_of(module_name(p)) == floor]
    assert paths, f"no modules found for {floor}"

    # act
    bad = [
        v for p in paths for v in violations(p.read_text(), module_name(p), p.name == "__init__.py")
    ]

    # check
    assert bad == []


def test_the_rule_catches_upward_imports_lazy_ones_too():
    # prepare: a core module that imports the CLI, a sibling, and (lazily) the benchmarks
    text = (
        "from derelay.cli.main import main\nfrom . import chain\ndef f():\n    import bench.run\n"
    )

    # act
    bad = violations(text, "derelay.trainer.probe")

    # check: both upward imports are caught, the sibling is not
    assert bad == [
        "derelay.trainer.probe:1 -> derelay.cli.main",
        "derelay.trainer.probe:4 -> bench.run",
    ]
