"""Where a function's code, layers and interpreter come from: the source tree or the ``sam build`` output."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from localcloud.deploy import DeployedFunction
from localcloud.pool import FunctionSpec

Artifact = Literal["source", "build"]

# What the Lambda Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


class ArtifactError(RuntimeError):
    """The requested artifact (e.g. the ``sam build`` output) is missing."""


def runtime_shim(project_root: Path) -> Path:
    """A directory exposing only the runtime's packages of this interpreter (when ``.aws-sam/runtime`` is absent)."""
    shim = project_root / ".sluice" / "runtime-shim"
    shim.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        target = origin.parent if origin.name == "__init__.py" else origin
        link = shim / target.name
        if not link.exists():
            with contextlib.suppress(FileExistsError):  # another local cloud made it meanwhile
                link.symlink_to(target)
    return shim


class Layout:
    """Maps a deployed function to directories on this machine for one artifact kind."""

    def __init__(self, project_root: Path, template_dir: Path, artifact: Artifact) -> None:
        self.project_root = project_root
        self.template_dir = template_dir
        self.artifact = artifact
        self.build_dir = project_root / ".aws-sam" / "build"
        if artifact == "build":
            if not self.build_dir.is_dir():
                raise ArtifactError(f"{self.build_dir} does not exist: run `sam build` (make build) first")
            runtime = project_root / ".aws-sam" / "runtime"
            self.runtime_dir = runtime if runtime.is_dir() else runtime_shim(project_root)

    def code_dir(self, fn: DeployedFunction) -> Path:
        """``functions/<name>/`` (source) or ``.aws-sam/build/<LogicalId>/`` (build)."""
        if self.artifact == "build":
            return self.build_dir / fn.logical_id
        return (self.template_dir / (fn.code_uri or ".")).resolve()

    def opt_dirs(self, fn: DeployedFunction) -> list[Path]:
        """Directories standing in for ``/opt`` (later ones win, like layer extraction order)."""
        if self.artifact == "build":
            return [self.build_dir / layer for layer in fn.layers]
        return [self.project_root]

    def python_path(self, fn: DeployedFunction) -> list[Path]:
        """``sys.path`` additions after the code directory, in Lambda's order."""
        if self.artifact == "source":
            return [self.project_root / "src"]
        paths: list[Path] = []
        for opt in reversed(self.opt_dirs(fn)):
            minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
            paths += [opt / "python" / "lib" / minor / "site-packages", opt / "python"]
        return [p for p in paths if p.is_dir()] + [self.runtime_dir]

    def map_opt(self, value: str, fn: DeployedFunction) -> str:
        """Rewrite ``/opt/<x>`` to the local directory providing ``<x>``."""
        if not value.startswith("/opt/"):
            return value
        rel = value[len("/opt/") :]
        for opt in reversed(self.opt_dirs(fn)):
            if (opt / rel.split("/", 1)[0]).exists():
                return str(opt / rel)
        return value

    def command(self) -> tuple[str, ...]:
        """The interpreter: this one, with ``-S`` for build artifacts so the venv stays out of reach."""
        return (sys.executable, "-S") if self.artifact == "build" else (sys.executable,)


def function_spec(
    fn: DeployedFunction, config: Mapping[str, Any], layout: Layout, sdk_env: Mapping[str, str]
) -> FunctionSpec:
    """Spec of one function from its deployed configuration (``get_function_configuration``)."""
    code_dir = layout.code_dir(fn)
    variables = config.get("Environment", {}).get("Variables", {})
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    env.update({k: layout.map_opt(str(v), fn) for k, v in variables.items()})
    env.update(sdk_env)
    memory = int(config.get("MemorySize", 128))
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "localcloud",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.get('Runtime', 'python3.13')}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": str(config.get("Handler", "app.handler")),
            "TZ": ":UTC",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(str(p) for p in [code_dir, *layout.python_path(fn)]),
        }
    )
    if layout.artifact == "build":
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # never write into the build output
    return FunctionSpec(
        logical_id=fn.logical_id,
        name=fn.name,
        arn=fn.arn,
        handler=env["_HANDLER"],
        timeout=int(config.get("Timeout", 3)),
        memory=memory,
        code_dir=code_dir,
        command=layout.command(),
        env=env,
    )
