"""Bucket settings moto's CloudFormation ignores (it applies only the name, encryption and tags)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("localcloud.deploy")


def apply_bucket_settings(s3: Any, bucket: str, props: dict[str, Any]) -> list[str]:
    """Versioning, public access block, ownership, lifecycle, notifications; returns what was applied."""
    steps: dict[str, Callable[[Any], None]] = {
        "VersioningConfiguration": lambda v: s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": v["Status"]}
        ),
        "PublicAccessBlockConfiguration": lambda v: s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=v
        ),
        "OwnershipControls": lambda v: s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=v),
        "LifecycleConfiguration": lambda v: s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [lifecycle_rule(r) for r in v["Rules"]]}
        ),
        "NotificationConfiguration": lambda v: _notifications(s3, bucket, v),
    }
    applied = []
    for name, step in steps.items():
        if name in props:
            step(props[name])
            applied.append(name)
    return applied


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    api: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "NoncurrentVersionExpirationInDays" in rule:
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return api


def _notifications(s3: Any, bucket: str, config: dict[str, Any]) -> None:
    api: dict[str, Any] = {}
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        api["EventBridgeConfiguration"] = {}
    queues = [
        {"QueueArn": q["Queue"], "Events": [q["Event"]], **_filter(q)} for q in config.get("QueueConfigurations", [])
    ]
    topics = [
        {"TopicArn": t["Topic"], "Events": [t["Event"]], **_filter(t)} for t in config.get("TopicConfigurations", [])
    ]
    if queues:
        api["QueueConfigurations"] = queues
    if topics:
        api["TopicConfigurations"] = topics
    if config.get("LambdaConfigurations"):
        log.warning("%s: S3 -> Lambda notifications are not routed locally; use EventBridge or SQS", bucket)
    if api:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=api)


def _filter(item: dict[str, Any]) -> dict[str, Any]:
    rules = item.get("Filter", {}).get("S3Key", {}).get("Rules")
    return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}
