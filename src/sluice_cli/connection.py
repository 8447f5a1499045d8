"""How CLI commands reach a cloud: the running local one (``sluice local up``), their own, or a deployed stack."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from sluice.errors import SluiceError

STATE_FILE = Path(".sluice/local.json")
REGION = "us-east-1"


class NoLocalCloudError(SluiceError):
    """No local cloud is running."""


def project_root() -> Path:
    """The sluice checkout: the nearest folder upwards holding template.yaml."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file() and (folder / "contracts").is_dir():
            return folder
    raise SluiceError("run sluice inside the project (no template.yaml + contracts/ found above the current folder)")


@dataclass(frozen=True)
class Connection:
    """Endpoint and physical resource names of a local cloud (or, with ``local=False``, of a deployed stack)."""

    endpoint: str
    resources: dict[str, str]
    local: bool = True
    profile: str | None = None
    region: str = REGION

    @classmethod
    def for_stack(
        cls, stack: str, *, profile: str | None = None, region: str | None = None, endpoint: str | None = None
    ) -> Connection:
        """The resources of deployed CloudFormation stack `stack`, reached with the standard AWS credentials.

        Raises
        ------
        SluiceError
            The stack cannot be described (missing, no credentials, no permission).

        """
        session = boto3.session.Session(profile_name=profile, region_name=region)
        cfn = session.client("cloudformation", endpoint_url=endpoint)
        resources: dict[str, str] = {}
        try:
            for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
                for r in page["StackResourceSummaries"]:
                    if r.get("PhysicalResourceId"):
                        resources[r["LogicalResourceId"]] = r["PhysicalResourceId"]
        except Exception as exc:
            raise SluiceError(f"cannot read the resources of stack {stack!r}: {exc}") from exc
        return cls(endpoint or "", resources, local=False, profile=profile, region=session.region_name or REGION)

    def client(self, service: str) -> Any:
        """A boto3 client bound to this cloud."""
        if not self.local:
            session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            return session.client(service, endpoint_url=self.endpoint or None)  # type: ignore[call-overload]
        return boto3.session.Session().client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def sdk_env(self) -> dict[str, str]:
        """Environment that points boto3 (and sluice's adapters) at this cloud."""
        if not self.local:
            env = {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
            if self.profile:
                env["AWS_PROFILE"] = self.profile
            if self.endpoint:
                env["AWS_ENDPOINT_URL"] = self.endpoint
            return env
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """Temporarily point this process's SDK configuration at the local cloud."""
        saved = {k: os.environ.get(k) for k in self.sdk_env()}
        os.environ.update(self.sdk_env())
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def resource(self, logical_id: str) -> str:
        """Physical id of `logical_id`."""
        try:
            return self.resources[logical_id]
        except KeyError:
            where = "the local cloud" if self.local else "the stack"
            raise SluiceError(f"{where} has no resource {logical_id!r}") from None


def running(root: Path | None = None) -> Connection:
    """The local cloud started by ``sluice local up``.

    Raises
    ------
    NoLocalCloudError
        None is running (no state file, or its server does not answer).

    """
    path = (root or project_root()) / STATE_FILE
    if not path.is_file():
        raise NoLocalCloudError("no local cloud is running: start one with `sluice local up` (or run `sluice demo`)")
    state = json.loads(path.read_text())
    conn = Connection(state["endpoint"], dict(state["resources"]))
    try:
        conn.client("s3").list_buckets()
    except Exception as exc:
        raise NoLocalCloudError(
            f"the local cloud recorded in {path} ({conn.endpoint}) does not answer: start one with `sluice local up`"
        ) from exc
    return conn


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``--stack`` and the credentials that go with it: which cloud a command talks to."""
    parser.add_argument("--stack", help="a deployed stack (AWS credentials as for the AWS CLI)")
    parser.add_argument("--profile", help="AWS profile (with --stack)")
    parser.add_argument("--region", help="AWS region (with --stack)")
    parser.add_argument("--endpoint-url", help="AWS endpoint (with --stack)")


def connect(args: argparse.Namespace, root: Path | None = None) -> Connection:
    """The deployed stack ``--stack`` names, or else the running local cloud.

    Raises
    ------
    SluiceError
        ``--profile``, ``--region`` or ``--endpoint-url`` without ``--stack``.

    """
    if args.stack:
        return Connection.for_stack(args.stack, profile=args.profile, region=args.region, endpoint=args.endpoint_url)
    if args.profile or args.region or args.endpoint_url:
        raise SluiceError("--profile, --region and --endpoint-url go with --stack")
    return running(root)
