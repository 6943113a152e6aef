"""The house's floors: commands at the top, the library in ``binaural/``, imports going down only.

Every import of the package is read from the source (function-level ones too, which run later
but couple the modules all the same), so a layering mistake fails here before anyone runs it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "binaural"
#: The commands a user runs: the only Python files at the top of the repository.
COMMANDS = {
    "create_binaural_librimix.py", "create_binaural_wsj0mix.py", "metrics.py", "report.py", "separate.py", "synthetic_speech.py", "train.py",
}
#: The layers of the package, lowest first. A module imports from its own sub-package or from a
#: sub-package of a LOWER rank, never from one of its rank or above: data and models stay apart,
#: and neither sees the real-time engines, evaluation or training helpers.
RANKS = {
    "errors": 0,
    "io": 1,
    "data": 2, "models": 2,
    "realtime": 3, "evaluation": 3, "training": 3,
    "separation": 4,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (``from a.b import c`` gives ``a.b``,
    and ``a.b.c`` too when ``c`` is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (PROJECT_ROOT / Path(*candidate.split("."))).with_suffix(".py").is_file() or (
                    PROJECT_ROOT / Path(*candidate.split(".")) / "__init__.py"
                ).is_file():
                    found.add(candidate)
    return found


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    """``binaural.data.hrtf`` -> ``data``; ``binaural.errors`` -> ``errors``."""
    return module.split(".")[1]


def test_the_top_level_holds_only_commands():
    top = {path.name for path in PROJECT_ROOT.glob("*.py")}
    assert top == COMMANDS, f"library modules at the top: {sorted(top - COMMANDS)}; missing: {sorted(COMMANDS - top)}"
    for name in COMMANDS:
        assert 'if __name__ == "__main__":' in (PROJECT_ROOT / name).read_text(encoding="utf-8"), f"{name} is no command"


def test_every_module_sits_in_a_layer():
    modules = package_modules()
    layers = {layer_of(module) for module in modules if module != "binaural"}
    assert layers == set(RANKS), f"sub-packages without a rank: {sorted(layers - set(RANKS))}"
    for layer in RANKS:
        if layer != "errors":
            assert (PACKAGE / layer / "__init__.py").is_file(), f"binaural/{layer} is no package"


def test_imports_go_down_the_layers():
    offences = []
    for module, path in package_modules().items():
        if module == "binaural":
            continue
        rank, layer = RANKS[layer_of(module)], layer_of(module)
        for target in imported_modules(path):
            if target.split(".")[0] in {name[:-3] for name in COMMANDS}:
                offences.append(f"{module} imports the command {target}")
            if not target.startswith("binaural.") or layer_of(target) == layer:
                continue
            if RANKS[layer_of(target)] >= rank:
                offences.append(f"{module} ({layer}) imports {target} ({layer_of(target)})")
    assert not offences, "\n".join(offences)


def test_no_import_circle():
    modules = package_modules()
    graph = {m: sorted(t for t in imported_modules(p) if t in modules and t != m) for m, p in modules.items()}
    # A package's __init__ is imported on the way to any of its modules: not a circle by itself.
    graph = {m: [t for t in targets if not m.startswith(t + ".")] for m, targets in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                circle = path[path.index(target):] + [target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_layer_checks_catch_an_upward_import(tmp_path):
    """The reader sees an import inside a function, which is where a shortcut would hide."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from binaural.evaluation.metrics import snr_db\n    import binaural.realtime.streaming\n")
    assert {"binaural.evaluation.metrics", "binaural.realtime.streaming"} <= imported_modules(source)
    assert RANKS[layer_of("binaural.evaluation.metrics")] > RANKS[layer_of("binaural.data.hrtf")]


def test_commands_are_thin():
    """A command parses its arguments and reports errors; the recipe's machinery lives in the package.
    train.py keeps the Brain (reading it is reading the recipe), the others stay small."""
    for name in COMMANDS - {"train.py"}:
        lines = (PROJECT_ROOT / name).read_text(encoding="utf-8").count("\n")
        assert lines < 260, f"{name}: {lines} lines; move its machinery into binaural/"
