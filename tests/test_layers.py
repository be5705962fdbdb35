"""The package's layers point one way: a module imports only from its own layer or below.

Every ``import ampczoo.x`` / ``from ampczoo.x import`` in the package (also the lazy ones
inside functions) is checked against :data:`LAYERS`. A new sub-package must be given a layer
here, so its place in the architecture is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ampczoo"
#: bottom to top; a module may import from its own layer and any layer before it.
LAYERS = [
    "core",  # policy protocol, checkpoint format, registries
    "robots",  # models, kinematics, observation layouts, reachability
    "nn",  # building blocks: QP layer, diffusion, normalisation, features
    "ik",  # kinematic trees and IKDiffuser (robots + nn); experts may seed from it
    "envs",
    "experts",
    "wrappers",
    "policies",
    "data",  # collection (experts + envs), stores, datasets
    "training",  # the one supervised loop (policies + data)
    "finetune",  # RL fine-tuning with stable-baselines3 (policies + data)
    "benchmarks",
    "cli",
    "__main__",
]
RANK = {name: i for i, name in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    """'ampczoo.nn.qp' -> 'nn'; the package root ('ampczoo') -> None (exempt)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ampczoo" else None


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute ampczoo import in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ampczoo")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ampczoo":  # from ampczoo import envs (a sub-package), __version__
                found += [(node.lineno, f"ampczoo.{a.name}") for a in node.names if is_part(a.name)]
            elif node.module.startswith("ampczoo."):
                found.append((node.lineno, node.module))
    return found


def is_part(name: str) -> bool:
    """Whether ``ampczoo.<name>`` is a sub-package or module (not an attribute)."""
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def module_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.stem != "__init__")


def upward_imports(source: str, own: str, where: str = "<source>") -> list[str]:
    """Imports in ``source`` (a module of layer ``own``) that reach a higher layer."""
    if own not in RANK:
        return [f"{where}: layer {own!r} is not in tests/test_layers.py LAYERS"]
    bad = []
    for line, module in imported_modules(ast.parse(source, where)):
        target = layer_of(module)
        if target is not None and target not in RANK:
            bad.append(f"{where}:{line}: unknown layer {target!r}")
        elif target is not None and RANK[target] > RANK[own]:
            bad.append(f"{where}:{line} ({own}) imports {module} ({target})")
    return bad


@pytest.mark.parametrize("path", module_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_the_layers(path: Path) -> None:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    own = layer_of(".".join(rel.parts))
    assert own is not None
    assert upward_imports(path.read_text(), own, str(rel)) == []


def test_the_check_sees_upward_and_lazy_imports() -> None:
    lazy = "def f():\n    from ampczoo.policies.dampc import DAMPCPolicy\n"
    assert upward_imports(lazy, "nn") == [
        "<source>:2 (nn) imports ampczoo.policies.dampc (policies)"
    ]
    assert upward_imports(lazy, "benchmarks") == []
    assert upward_imports("import ampczoo.envs.kuka_track\n", "robots") != []
    assert upward_imports("from ampczoo import __version__, envs\n", "data") == []
    assert upward_imports("from ampczoo import benchmarks\n", "data") != []
    assert upward_imports("x = 1\n", "newlayer") != []  # a new layer must be placed
