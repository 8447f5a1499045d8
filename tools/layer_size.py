"""Check the unzipped size of the `sam build` output against the project's budget.

Lambda refuses a function whose code plus all its layers exceed 262,144,000 bytes (250 MiB)
unzipped. sluice keeps a margin: the two layers plus the largest function must stay within
200 MiB. Prints every artifact's size, each function's real total (its code + the layers the
built template gives it), and exits 1 when over budget.

Usage: ``python tools/layer_size.py [--build-dir .aws-sam/build] [--budget-mib 200]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

LAMBDA_LIMIT = 262_144_000
MIB = 2**20


class _TemplateLoader(yaml.SafeLoader):
    """Safe loader that reads CloudFormation short-form tags (``!Ref X``) as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _any_tag)


def tree_size(path: Path) -> int:
    """Sum of the sizes of the regular files under `path` (what the zip holds unzipped)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path, followlinks=True):
        for name in files:
            total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return value if isinstance(value, str) else None


def function_layers(template: dict[str, Any]) -> dict[str, list[str]]:
    """Logical ids of the layers each function has (Globals first, as SAM merges them)."""
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    result: dict[str, list[str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        own = resource.get("Properties", {}).get("Layers", [])
        refs = [_ref(layer) for layer in [*global_layers, *own]]
        result[logical_id] = [r for r in refs if r]
    return result


def layer_ids(template: dict[str, Any]) -> list[str]:
    """Logical ids of the layers the template builds."""
    kinds = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
    return [lid for lid, res in template.get("Resources", {}).items() if res.get("Type") in kinds]


def main(argv: list[str] | None = None) -> int:
    """Print sizes; return 1 when the layers plus the largest function exceed the budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--budget-mib", type=float, default=200.0)
    args = parser.parse_args(argv)
    built_template = args.build_dir / "template.yaml"
    if not built_template.is_file():
        print(f"size check: {built_template} is missing; run `make build` first", file=sys.stderr)
        return 2
    template = yaml.load(built_template.read_text(encoding="utf-8"), Loader=_TemplateLoader)
    budget = int(args.budget_mib * MIB)

    layers = {lid: tree_size(args.build_dir / lid) for lid in layer_ids(template)}
    functions = {
        fid: tree_size(args.build_dir / fid) for fid in function_layers(template) if (args.build_dir / fid).is_dir()
    }
    for lid, size in layers.items():
        print(f"size check: layer    {lid:<24} {size / MIB:8.1f} MiB  ({size:,} bytes)")
    for fid, size in sorted(functions.items()):
        with_layers = size + sum(layers.get(lid, 0) for lid in function_layers(template)[fid])
        print(f"size check: function {fid:<24} {size / MIB:8.3f} MiB  with its layers {with_layers / MIB:6.1f} MiB")
    largest = max(functions.values(), default=0)
    total = sum(layers.values()) + largest
    verdict = "OK" if total <= budget else "OVER BUDGET"
    print(
        f"size check: all layers + largest function = {total / MIB:.1f} MiB "
        f"({total:,} bytes); budget {args.budget_mib:g} MiB, Lambda limit {LAMBDA_LIMIT / MIB:g} MiB: "
        f"{verdict}"
    )
    if total > budget:
        print(
            "size check: trim the data layer (tools/layer_trim.py) or move a dependency out; see layers/README.md",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
