"""Build test resources from template.yaml (never by hand), inside moto's `mock_aws`.

The template's plain CloudFormation resources of the kinds the functional tier needs (buckets,
tables, queues, streams) are deployed through moto's CloudFormation, so their key schemas,
indexes, versioning and redrive policies are exactly the template's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[1]
PLAIN_TYPES = ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Kinesis::Stream")


def plain_template(types: tuple[str, ...] = PLAIN_TYPES) -> dict[str, Any]:
    """template.yaml reduced to its resources of `types` (with the parameters they use)."""
    template = load(str(ROOT / "template.yaml"))
    resources = {k: v for k, v in template["Resources"].items() if v["Type"] in types}
    return json.loads(
        json.dumps(
            {
                "AWSTemplateFormatVersion": "2010-09-09",
                "Parameters": template.get("Parameters", {}),
                "Conditions": template.get("Conditions", {}),
                "Resources": resources,
            },
            default=str,
        )
    )


def deploy(cfn: Any, stack_name: str = "sluice-test", types: tuple[str, ...] = PLAIN_TYPES) -> dict[str, str]:
    """Create the stack in moto; returns ``{LogicalId: physical id}``."""
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(plain_template(types)))
    found: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for r in page["StackResourceSummaries"]:
            found[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    return found


def apply_ignored_settings(s3: Any, resources: dict[str, str]) -> None:
    """Apply what moto's CloudFormation skips: bucket versioning."""
    template = load(str(ROOT / "template.yaml"))
    for logical, res in template["Resources"].items():
        status = res.get("Properties", {}).get("VersioningConfiguration", {}).get("Status")
        if res["Type"] == "AWS::S3::Bucket" and status and logical in resources:
            s3.put_bucket_versioning(Bucket=resources[logical], VersioningConfiguration={"Status": status})


def function_environment(logical_id: str, resources: dict[str, str]) -> dict[str, str]:
    """The environment template.yaml gives `logical_id` (Globals + its own), Refs resolved to `resources`."""
    template = load(str(ROOT / "template.yaml"))
    params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
    env = {}
    for name, value in merged.items():
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            env[name] = resources.get(ref) or params.get(ref, "")
        else:
            env[name] = str(value)
    return env
