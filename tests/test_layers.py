"""The layers of ../shared/ARCHITECTURE.md: each package imports only what sits below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "seq2seq_lab"

# what each layer may not import: models know nothing of Lightning, Hydra or files; data nothing of models
# (deploy.runtime, the image and id helpers an exported graph's reader shares with training, is a leaf:
# numpy and Pillow only); systems nothing of callbacks or entry points
FORBIDDEN = {
    "models": ("lightning", "hydra", "omegaconf", "seq2seq_lab.data", "seq2seq_lab.systems", "seq2seq_lab.callbacks",
               "seq2seq_lab.deploy"),
    "data": ("seq2seq_lab.models", "seq2seq_lab.systems", "seq2seq_lab.callbacks", "hydra"),
    "systems": ("seq2seq_lab.callbacks", "hydra", "seq2seq_lab.train", "seq2seq_lab.eval", "seq2seq_lab.predict"),
}
LEAVES = {"seq2seq_lab.deploy.runtime": ("seq2seq_lab", "torch", "lightning")}


def imported_modules(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports are not used in the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _breaks(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer):
    broken = [f"{path.relative_to(PACKAGE)}: {name}" for path in sorted((PACKAGE / layer).rglob("*.py"))
              for name in sorted(imported_modules(path)) if _breaks(name, FORBIDDEN[layer])]
    assert not broken, broken


def test_the_shared_runtime_is_a_leaf():
    for module, forbidden in LEAVES.items():
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        assert not [n for n in imported_modules(path) if _breaks(n, forbidden)], module
