"""The package's layers: each sub-package imports only the layers below it, and only adapters touch AWS."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "sluice"

#: What each sub-package may import of sluice (besides itself). Top-level modules are shared
#: concepts (contracts, errors, uris, ports) or wiring (settings, tuning).
ALLOWED = {
    "engine": {"contracts", "errors"},
    "aggregates": {"contracts", "errors"},
    "pipeline": {"contracts", "errors", "uris", "ports", "engine", "aggregates"},
}
AWS_SDK = {"boto3", "botocore", "s3transfer"}


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sluice_parts(names: set[str]) -> set[str]:
    """The first component below ``sluice`` of each sluice module in `names`."""
    return {name.split(".")[1] for name in names if name.startswith("sluice.")}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_what_lies_below_it(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no modules in sluice.{layer}"
    wrong = {
        str(path.relative_to(PACKAGE)): sorted(sluice_parts(imports(path)) - ALLOWED[layer] - {layer}) for path in files
    }
    assert {path: parts for path, parts in wrong.items() if parts} == {}


def test_only_adapters_import_the_aws_sdk() -> None:
    users = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if {name.split(".")[0] for name in imports(path)} & AWS_SDK
    }
    assert users and all(path.startswith("adapters/") for path in users), users


def test_every_module_lives_in_a_layer_or_is_a_shared_concept() -> None:
    top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == {"contracts", "errors", "ports", "prices", "settings", "tuning", "uris"}
