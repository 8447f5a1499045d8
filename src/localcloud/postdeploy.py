"""Apply, through the service APIs, what moto's CloudFormation skips (best effort, each step logged)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from localcloud.buckets import apply_bucket_settings
from localcloud.deploy import ClientFactory, Deployment
from localcloud.intrinsics import UnresolvableError, apply_conditions, evaluate_conditions, resolve

log = logging.getLogger("localcloud.deploy")
Notify = Callable[[str, dict[str, Any]], None]

BUCKET_SETTINGS = {
    "VersioningConfiguration",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "LifecycleConfiguration",
    "NotificationConfiguration",
}
NOT_APPLIED = {
    "AWS::S3::BucketPolicy": "bucket policies are not enforced locally (and would deny plain-HTTP access)",
    "AWS::Scheduler::Schedule": "schedules fire only on demand (tick)",
    "AWS::CodeDeploy::Application": "no gradual deployment locally: each live alias points at the one version",
    "AWS::CodeDeploy::DeploymentGroup": "no gradual deployment locally: each live alias points at the one version",
    "AWS::Lambda::EventInvokeConfig": "asynchronous invocations run once locally (no retries, no failure destination)",
}


def apply(client: ClientFactory, dep: Deployment, notify: Notify) -> None:
    """Bucket settings, queue policies, Glue databases and tables, Athena work groups, CloudWatch alarms."""
    handlers: dict[str, Callable[[ClientFactory, Deployment, str, dict[str, Any]], str | None]] = {
        "AWS::S3::Bucket": _bucket,
        "AWS::SQS::QueuePolicy": _queue_policy,
        "AWS::Glue::Database": _glue_database,
        "AWS::Glue::Table": _glue_table,
        "AWS::Athena::WorkGroup": _athena_work_group,
        "AWS::CloudWatch::Alarm": _alarm,
    }
    resources: dict[str, Any] = dep.translated["Resources"]
    # Glue tables name their database by Ref: databases first.
    order = sorted(resources, key=lambda lid: resources[lid].get("Type") == "AWS::Glue::Table")
    try:
        conditions = evaluate_conditions(dep.translated.get("Conditions", {}), dep.refs(), dep.getatt)
    except UnresolvableError as exc:
        notify("deploy.skipped", {"resource": "Conditions", "type": "Conditions", "reason": str(exc)})
        conditions = {}
    for lid in order:
        kind = resources[lid].get("Type", "")
        condition = resources[lid].get("Condition")
        if condition is not None and not conditions.get(condition, False):
            continue  # CloudFormation does not create it either
        if kind in NOT_APPLIED:
            notify("deploy.skipped", {"resource": lid, "type": kind, "reason": NOT_APPLIED[kind]})
            continue
        handler = handlers.get(kind)
        raw = resources[lid].get("Properties", {})
        if handler is None or (kind == "AWS::S3::Bucket" and not set(raw) & BUCKET_SETTINGS):
            continue
        try:
            props = resolve(apply_conditions(raw, conditions), dep.refs(), dep.getatt)
            physical = handler(client, dep, lid, props)
        except (UnresolvableError, KeyError, TypeError, ValueError) as exc:
            notify("deploy.skipped", {"resource": lid, "type": kind, "reason": str(exc)})
            continue
        except Exception as exc:  # a botocore ClientError from moto: best effort, keep going
            notify("deploy.failed", {"resource": lid, "type": kind, "reason": str(exc)})
            continue
        if physical is not None:
            dep.resources[lid] = physical
            notify("deploy.applied", {"resource": lid, "type": kind, "physical_id": physical})


def _bucket(client: ClientFactory, dep: Deployment, lid: str, props: dict[str, Any]) -> str | None:
    applied = apply_bucket_settings(client("s3"), dep.resources[lid], props)
    log.debug("%s: applied %s", lid, applied)
    return None


def _queue_policy(client: ClientFactory, dep: Deployment, lid: str, props: dict[str, Any]) -> str | None:
    sqs = client("sqs")
    for url in props.get("Queues", []):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    return None


def _glue_database(client: ClientFactory, dep: Deployment, lid: str, props: dict[str, Any]) -> str:
    database = props["DatabaseInput"]
    client("glue").create_database(DatabaseInput=database)
    return str(database["Name"])


def _glue_table(client: ClientFactory, dep: Deployment, lid: str, props: dict[str, Any]) -> str:
    table = props["TableInput"]
    client("glue").create_table(DatabaseName=props["DatabaseName"], TableInput=table)
    return str(table["Name"])


def _athena_work_group(client: ClientFactory, dep: Deployment, lid: str, props: dict[str, Any]) -> str:
    kwargs: dict[str, Any] = {"Name": props["Name"]}
    if "Description" in props:
        kwargs["Description"] = props["Description"]
    if "WorkGroupConfiguration" in props:
        kwargs["Configuration"] = props["WorkGroupConfiguration"]
    if props.get("Tags"):
        kwargs["Tags"] = props["Tags"]
    client("athena").create_work_group(**kwargs)
    return str(props["Name"])


def _alarm(client: ClientFactory, dep: Deployment, lid: str, props: dict[str, Any]) -> None:
    """Start an alarm as AWS does: moto's CloudFormation created it (cfnmodels.AlarmModel) in OK."""
    name = dep.resources.get(lid)
    if name is None:
        raise KeyError(f"{lid} was not created: is localcloud.cfnmodels registered?")
    # AWS starts a new alarm in INSUFFICIENT_DATA (moto in OK); moto never evaluates it afterwards
    client("cloudwatch").set_alarm_state(
        AlarmName=name,
        StateValue="INSUFFICIENT_DATA",
        StateReason="Unchecked: Initial alarm creation",
    )
