"""The house's rules, read from the imports with ``ast`` so that they hold from now on
(docs/architecture.md draws the map):

* layers from the bottom — (1) helpers, tasks, losses, metrics, errors, configs;
  (2) models, data, synthetic, text; (3) training, fusion, accounts; (4) evaluation,
  detect; (5) the entry points — and each module imports only from its layer or below;
* ``drugjax/data`` reaches the world generator in one place only (the default world's build);
* no module imports another module's private names;
* nothing in the package imports the top-level scripts.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "drugjax"

LAYERS = {
    "drugjax.runtime": 1, "drugjax.errors": 1, "drugjax.metrics": 1, "drugjax.tasks": 1,
    "drugjax.losses": 1, "drugjax.conf": 1,
    "drugjax.models": 2, "drugjax.data": 2, "drugjax.synthetic": 2, "drugjax.text": 2,
    "drugjax.training": 3, "drugjax.fusion": 3, "drugjax.accounts": 3,
    "drugjax.evaluation": 4, "drugjax.detect": 4,
    "drugjax.train": 5, "drugjax.evaluate": 5,
}
# The one module of drugjax/data that builds the synthetic world (on first use).
DATA_TO_SYNTHETIC = {"drugjax.data.builders"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((base, [alias.name for alias in node.names], node.lineno))
    return found


def _layer(module: str) -> int | None:
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def _package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unplaced = [_module_name(p) for p in _package_modules()
                if _module_name(p) != "drugjax" and _layer(_module_name(p)) is None]
    assert unplaced == [], f"add these to LAYERS (and docs/architecture.md): {unplaced}"


def _targets(imported: str, names: list[str]) -> list[str]:
    """What an import reaches: ``from drugjax.data import schema`` reaches drugjax.data.schema."""
    if imported == "drugjax":
        return [f"drugjax.{name}" for name in names]
    return [imported]


def test_imports_only_point_down():
    upward = []
    for path in _package_modules():
        module = _module_name(path)
        own = _layer(module)
        for imported, names, line in _imports(path):
            for target in _targets(imported, names):
                layer = _layer(target)
                if own is not None and layer is not None and layer > own:
                    upward.append(f"{module}:{line} (layer {own}) imports {target} (layer {layer})")
    assert upward == []


def test_data_reaches_the_generator_only_to_build_the_default_world():
    reaching = [f"{_module_name(p)}:{line}" for p in (PACKAGE / "data").rglob("*.py")
                for imported, names, line in _imports(p)
                if any(t.startswith("drugjax.synthetic") for t in _targets(imported, names))
                or (imported == "drugjax.synthetic" or imported.startswith("drugjax.synthetic."))]
    assert {r.split(":")[0] for r in reaching} <= DATA_TO_SYNTHETIC, reaching


def test_no_module_imports_another_modules_private_names():
    private = [f"{_module_name(p)}:{line} imports {name} from {imported}"
               for p in _package_modules() for imported, names, line in _imports(p)
               if imported.startswith("drugjax") for name in names if name.startswith("_")]
    assert private == []


def test_the_package_never_imports_the_top_level_scripts():
    scripts = [f"{_module_name(p)}:{line}" for p in _package_modules() for imported, _, line in _imports(p)
               if imported in ("train", "evaluate")]
    assert scripts == []
