"""The package's import structure: no loops, and imports only point down (the artifact core <- training, hub,
serving; hub and serving never import training), read from every module's source (function-level imports too;
imports under `if TYPE_CHECKING:` are for type checkers only and never run)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests.loaded_modules import modules_loaded_by

SRC = Path(__file__).resolve().parent.parent / "src"
# The artifact core: what a policy is, where it comes from, how it is checked, evaluated and exported, and the envs
CORE = {
    "allocator",  # the C allocator's settings while evaluation (core) and training run
    "errors",
    "output",  # a command's result on stdout: every layer's verbs print through it, as they raise `errors`
    "spaces",
    "networks",
    "policy",
    "distributions",
    "envs",
    "evaluation",
    "export",
    "frames",
    "games",
    "lazy_torch",
    "network_spec",
    "numpy_forward",
    "normalization",
    "registration",
    "run_folder",
    "safetensors_header",
    "schema",
    "sources",
    "whole_numbers",  # how a count is read from a command line: every layer's verbs read their flags through it
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The rlship modules `path` imports when it runs."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == "rlship")
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "rlship":
                for alias in child.names:  # `from rlship.hub import pull` imports the module rlship.hub.pull
                    sub = f"{child.module}.{alias.name}"
                    found.add(sub if sub in modules else child.module)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    paths = sorted(SRC.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in paths}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in ("training", "hub", "serving"):
        return parts[1]
    if len(parts) >= 2 and parts[1] in CORE:
        return "core"
    return "top"  # the package itself, the CLI and the verbs that sit on everything


FORBIDDEN = {
    "core": {"training", "hub", "serving", "top"},
    "hub": {"training", "serving", "top"},
    "serving": {"training", "hub", "top"},
    "training": {"hub", "serving", "top"},
}


def test_the_graph_sees_the_package() -> None:
    g = graph()
    assert {"rlship.policy", "rlship.training.run", "rlship.hub.pull", "rlship.serving.service"} <= set(g)
    assert "rlship.policy" in g["rlship.training.run"]  # real edges are found


@pytest.mark.parametrize("module", sorted(graph()))
def test_imports_point_down(module: str) -> None:
    bad = {m for m in graph()[module] if layer(m) in FORBIDDEN.get(layer(module), set())}
    # the package's own __init__ is "top" by position but is what every `import rlship.x` runs first: importing
    # a name it re-exports (rlship.__version__) is allowed from anywhere
    bad.discard("rlship")
    assert not bad, f"{module} ({layer(module)}) imports {sorted(bad)}"


def test_no_import_loops() -> None:
    g = graph()
    # Tarjan's strongly connected components: a component of more than one module is a loop
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            connect(v)
    assert not loops, f"import loops: {loops}"


# What a help command imports, read from the process that answers it (a fresh interpreter, as a user's shell
# starts one). torch takes seconds to import; help pages must answer without it.
_RUN_THE_COMMAND = """
import contextlib, sys
from rlship.cli import main
with contextlib.redirect_stdout(None), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
"""


def modules_imported_by(*argv: str) -> set[str]:
    return modules_loaded_by(_RUN_THE_COMMAND, *argv)


@pytest.mark.parametrize("argv", [("--help",), ("train", "--help"), ("train", "ppo", "--help"), ("train", "dqn", "-h")])
def test_help_does_not_import_torch(argv: tuple[str, ...]) -> None:
    modules = modules_imported_by(*argv)
    assert "rlship.cli" in modules  # the command ran in that process
    if argv[0] == "train":
        assert {"rlship.training.ppo", "rlship.training.dqn"} <= modules  # the flags came from the configs
    heavy = {m for m in modules if m.split(".")[0] in ("torch", "matplotlib", "safetensors")}
    assert not heavy, f"rlship {' '.join(argv)} imports {sorted(heavy)[:5]}"


def test_mlp_activation_names_match_the_torch_modules() -> None:
    from rlship.network_spec import ACTIVATION_NAMES
    from rlship.networks import ACTIVATIONS

    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS)
