"""The deployable artifact as Lambda will see it: `sam build` output + the runtime's boto3.

Lambda runs a function with its code in /var/task, its layers' ``python/`` on ``sys.path``
(/opt/python) and the runtime's own boto3/botocore. This module rebuilds that search path from
``.aws-sam/build`` so a test (or the local cloud) can import and run exactly what would be
deployed, with ``python -S`` so nothing from a virtualenv's site-packages leaks in.

- ``built_paths(fn)``: [function dir, each layer's python/ dir in the template's order]
- ``lambda_pythonpath(fn)``: those + the runtime dir (boto3 as the Lambda runtime ships it)
- ``lambda_environment(fn)``: the template's environment for ``fn`` with placeholder values
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
BUILD_DIR = REPO / ".aws-sam" / "build"
#: boto3/botocore as the Lambda runtime provides them (filled on first use from the lock below).
RUNTIME_DIR = REPO / ".aws-sam" / "runtime"
RUNTIME_REQUIREMENTS = REPO / "requirements" / "lambda-runtime.txt"
_RUNTIME_STAMP = RUNTIME_DIR / ".installed"

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


@dataclass(frozen=True)
class FunctionSpec:
    """What the template says about one function."""

    logical_id: str
    code_uri: Path
    handler: str
    runtime: str
    layers: tuple[str, ...]
    environment: dict[str, Any]

    @property
    def module(self) -> str:
        """Handler module name (``app`` for ``app.handler``)."""
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        """Handler attribute name (``handler`` for ``app.handler``)."""
        return self.handler.rsplit(".", 1)[1]


@cache
def load_template() -> dict[str, Any]:
    """The source template, intrinsic functions as dicts (``{"Ref": "X"}``)."""
    from cfnlint.decode.cfn_yaml import load

    return dict(load(str(TEMPLATE)))


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return None


@cache
def functions() -> dict[str, FunctionSpec]:
    """Every function of the template, by logical id (Globals merged as SAM merges them)."""
    template = load_template()
    glob = template.get("Globals", {}).get("Function", {})
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") not in FUNCTION_TYPES:
            continue
        props = resource.get("Properties", {})
        layers = [_ref(layer) for layer in [*glob.get("Layers", []), *props.get("Layers", [])]]
        env = {
            **glob.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=REPO / str(props.get("CodeUri", glob.get("CodeUri", ""))),
            handler=str(props.get("Handler", glob.get("Handler"))),
            runtime=str(props.get("Runtime", glob.get("Runtime"))),
            layers=tuple(layer for layer in layers if layer),
            environment=env,
        )
    return specs


def built_architecture() -> str | None:
    """Architecture the layers in .aws-sam/build were built for (their ``BuildArchitecture``)."""
    import yaml

    built = BUILD_DIR / "template.yaml"
    if not built.is_file():
        return None
    resources = yaml.safe_load(built.read_text(encoding="utf-8")).get("Resources", {})
    archs = {
        res.get("Metadata", {}).get("BuildArchitecture", "x86_64")
        for res in resources.values()
        if res.get("Type") == "AWS::Serverless::LayerVersion"
    }
    return archs.pop() if len(archs) == 1 else None


def host_architecture() -> str:
    """This machine's architecture in Lambda's words (x86_64 or arm64)."""
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else machine


def layer_ids() -> list[str]:
    """Logical ids of the layers the template builds."""
    kinds = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
    return [lid for lid, res in load_template().get("Resources", {}).items() if res.get("Type") in kinds]


def built_paths(function_logical_id: str) -> list[Path]:
    """[.aws-sam/build/<Fn>, .aws-sam/build/<Layer>/python for each layer the function has]."""
    spec = functions()[function_logical_id]
    return [BUILD_DIR / function_logical_id, *(BUILD_DIR / layer / "python" for layer in spec.layers)]


def lambda_python() -> str:
    """An interpreter of the runtime's minor version (python3.13 for ``Runtime: python3.13``)."""
    runtimes = {spec.runtime for spec in functions().values()}
    wanted = runtimes.pop() if len(runtimes) == 1 else "python3.13"
    if f"python{sys.version_info.major}.{sys.version_info.minor}" == wanted:
        return sys.executable
    found = shutil.which(wanted)
    if found is None:
        raise RuntimeError(f"no {wanted} interpreter on PATH to run the built functions with")
    return found


def ensure_runtime_dir() -> Path:
    """Install the runtime's boto3 (requirements/lambda-runtime.txt) into .aws-sam/runtime once."""
    if _RUNTIME_STAMP.is_file() and _RUNTIME_STAMP.read_text() == RUNTIME_REQUIREMENTS.read_text():
        return RUNTIME_DIR
    shutil.rmtree(RUNTIME_DIR, ignore_errors=True)
    subprocess.run(
        [
            lambda_python(),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(RUNTIME_DIR),
            "-r",
            str(RUNTIME_REQUIREMENTS),
        ],
        check=True,
    )
    _RUNTIME_STAMP.write_text(RUNTIME_REQUIREMENTS.read_text())
    return RUNTIME_DIR


def lambda_pythonpath(function_logical_id: str) -> list[Path]:
    """The import path Lambda gives the function: its code, its layers, then the runtime's SDK."""
    return [*built_paths(function_logical_id), RUNTIME_DIR]


def _placeholder(value: Any, parameters: dict[str, Any]) -> str:
    """A stand-in for an intrinsic: parameter default, or a name derived from the logical id."""
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    ref = _ref(value)
    if ref is not None:
        if ref in parameters:
            return str(parameters[ref].get("Default", ref))
        return f"sluice-{ref.lower()}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name = target[0] if isinstance(target, list) else str(target).split(".")[0]
        return f"arn:aws:placeholder:us-east-1:123456789012:{name}"
    return "placeholder"


def lambda_environment(function_logical_id: str, **overrides: str) -> dict[str, str]:
    """Environment for running the built function outside Lambda (no network, no daemon).

    Template variables get placeholder values (``!Ref RawBucket`` -> ``sluice-rawbucket``),
    CONTRACTS_DIR points at the built SluiceLayer's contracts (what /opt/contracts holds), and
    ``PYTHONPATH`` is :func:`lambda_pythonpath`.
    """
    spec = functions()[function_logical_id]
    parameters = load_template().get("Parameters", {})
    env = {name: _placeholder(value, parameters) for name, value in spec.environment.items()}
    if "CONTRACTS_DIR" in env:
        env["CONTRACTS_DIR"] = str(BUILD_DIR / "SluiceLayer" / "contracts")
    env.update(
        {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(str(p) for p in lambda_pythonpath(function_logical_id)),
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # fake credentials: nothing leaves this machine
            "AWS_LAMBDA_FUNCTION_NAME": function_logical_id,
            # /var/task on Lambda; libraries check it to know they run there (the X-Ray SDK then
            # samples locally instead of building a botocore client for the daemon's rules)
            "LAMBDA_TASK_ROOT": str(BUILD_DIR / function_logical_id),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    env.update(overrides)
    return env
