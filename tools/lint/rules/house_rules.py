"""sluice house rules for cfn-lint (``cfn-lint --append-rules tools/lint/rules template.yaml``).

cfn-lint 1.x validates SAM templates as written (Globals merged, no SAM transform), so the rules
look at ``AWS::Serverless::Function`` and its ``Events`` as well as the plain CloudFormation types.

E9001 log group per function, E9002 stream sources' failure handling, E9003 asynchronous and queue
sources' failure targets, E9004 alias, log retention and reserved concurrency per function
(docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch

FUNCTION_TYPES = ["AWS::Serverless::Function", "AWS::Lambda::Function"]
#: SAM event types that read a stream (their event source mapping has a StartingPosition).
STREAM_EVENT_TYPES = ("Kinesis", "DynamoDB", "MSK", "SelfManagedKafka")


def _mentions(value: Any, logical_id: str) -> bool:
    """True if an intrinsic value names `logical_id` (``!Ref``, ``!GetAtt`` or ``${Id}`` in ``!Sub``)."""
    if isinstance(value, str):
        return f"${{{logical_id}}}" in value or f"${{{logical_id}." in value
    if isinstance(value, dict):
        get_att = value.get("Fn::GetAtt")
        att_target = get_att[0] if isinstance(get_att, list) and get_att else str(get_att).split(".")[0]
        if logical_id in (value.get("Ref"), att_target):
            return True
        value = list(value.values())
    return isinstance(value, list) and any(_mentions(v, logical_id) for v in value)


class FunctionHasLogGroup(CloudFormationLintRule):
    """Every function writes to a log group the stack owns (retention set, deleted with the stack)."""

    id = "E9001"
    shortdesc = "Lambda function without its own log group"
    description = (
        "Each AWS::Lambda::Function needs an AWS::Logs::LogGroup named /aws/lambda/<function> "
        "(or LoggingConfig.LogGroup) so retention is set and the group is deleted with the stack."
    )
    tags: ClassVar[list[str]] = ["sluice", "logs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        """One match per function without a log group."""
        groups = cfn.get_resources(["AWS::Logs::LogGroup"])
        names = [g.get("Properties", {}).get("LogGroupName") for g in groups.values()]
        matches = []
        for logical_id, fn in cfn.get_resources(FUNCTION_TYPES).items():
            props = fn.get("Properties", {})
            if props.get("LoggingConfig", {}).get("LogGroup"):
                continue
            if not any(_mentions(name, logical_id) and "/aws/lambda/" in str(name) for name in names):
                matches.append(
                    RuleMatch(
                        ["Resources", logical_id],
                        f"{logical_id} has no log group: add AWS::Logs::LogGroup with "
                        f"LogGroupName !Sub /aws/lambda/${{{logical_id}}} and RetentionInDays",
                    )
                )
        return matches


class StreamSourceHasOnFailure(CloudFormationLintRule):
    """Stream event sources (Kinesis, DynamoDB) send records they give up on somewhere."""

    id = "E9002"
    shortdesc = "Stream event source mapping without an OnFailure destination"
    description = (
        "An AWS::Lambda::EventSourceMapping reading a stream (it has StartingPosition) needs "
        "DestinationConfig.OnFailure.Destination, bounded retries (MaximumRetryAttempts) and "
        "BisectBatchOnFunctionError, or a poison record blocks its shard until it expires."
    )
    tags: ClassVar[list[str]] = ["sluice", "lambda", "streams"]

    def _stream_sources(self, cfn: Any) -> Iterator[tuple[list[str | int], str, dict[str, Any]]]:
        for logical_id, esm in cfn.get_resources(["AWS::Lambda::EventSourceMapping"]).items():
            props = esm.get("Properties", {})
            if "StartingPosition" in props:
                yield ["Resources", logical_id, "Properties"], logical_id, props
        for logical_id, fn in cfn.get_resources(["AWS::Serverless::Function"]).items():
            events = fn.get("Properties", {}).get("Events", {})
            for name, event in events.items() if isinstance(events, dict) else []:
                if isinstance(event, dict) and event.get("Type") in STREAM_EVENT_TYPES:
                    path: list[str | int] = ["Resources", logical_id, "Properties", "Events", name, "Properties"]
                    yield path, f"{logical_id}.Events.{name}", event.get("Properties", {})

    def match(self, cfn: Any) -> list[RuleMatch]:
        """One match per missing safeguard of each stream source."""
        matches = []
        for path, logical_id, props in self._stream_sources(cfn):
            if not props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"):
                matches.append(RuleMatch(path, f"{logical_id}: stream source without DestinationConfig.OnFailure"))
            if "MaximumRetryAttempts" not in props:
                matches.append(
                    RuleMatch(path, f"{logical_id}: stream source retries forever (set MaximumRetryAttempts)")
                )
            if not props.get("BisectBatchOnFunctionError"):
                matches.append(RuleMatch(path, f"{logical_id}: stream source without BisectBatchOnFunctionError"))
        return matches


#: SAM event types whose invocation is asynchronous (Lambda queues the event; failures need a destination).
ASYNC_EVENT_TYPES = (
    "Schedule",
    "ScheduleV2",
    "EventBridgeRule",
    "CloudWatchEvent",
    "S3",
    "SNS",
    "IoTRule",
    "CloudWatchLogs",
)


def _target_of(value: Any) -> str | None:
    """The logical id an intrinsic (``!GetAtt X.Arn``, ``!Ref X``) names, if any."""
    if isinstance(value, dict):
        get_att = value.get("Fn::GetAtt")
        if get_att is not None:
            return str(get_att[0] if isinstance(get_att, list) else str(get_att).split(".")[0])
        if "Ref" in value:
            return str(value["Ref"])
    return None


class AsyncPathHasFailureTarget(CloudFormationLintRule):
    """Asynchronous invocations and queue sources end somewhere when they keep failing."""

    id = "E9003"
    shortdesc = "Asynchronous or queue event source without a failure target"
    description = (
        "A function invoked asynchronously (schedules, EventBridge rules, S3, SNS) needs "
        "EventInvokeConfig with bounded MaximumRetryAttempts and DestinationConfig.OnFailure; an SQS "
        "event source needs its queue to have a RedrivePolicy (dead-letter queue)."
    )
    tags: ClassVar[list[str]] = ["sluice", "lambda", "async"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        """One match per event path without a failure target."""
        matches = []
        resources = cfn.get_resources()
        for logical_id, fn in cfn.get_resources(["AWS::Serverless::Function"]).items():
            props = fn.get("Properties", {})
            events = props.get("Events", {})
            for name, event in events.items() if isinstance(events, dict) else []:
                if not isinstance(event, dict):
                    continue
                path: list[str | int] = ["Resources", logical_id, "Properties", "Events", name]
                kind = event.get("Type")
                if kind in ASYNC_EVENT_TYPES:
                    config = props.get("EventInvokeConfig", {})
                    on_failure = config.get("DestinationConfig", {}).get("OnFailure", {})
                    if not on_failure.get("Destination") and not props.get("DeadLetterQueue"):
                        matches.append(
                            RuleMatch(
                                path,
                                f"{logical_id}.Events.{name} ({kind}) is asynchronous: add EventInvokeConfig "
                                "with DestinationConfig.OnFailure.Destination",
                            )
                        )
                    if "MaximumRetryAttempts" not in config:
                        matches.append(
                            RuleMatch(path, f"{logical_id}.Events.{name}: set EventInvokeConfig.MaximumRetryAttempts")
                        )
                elif kind == "SQS":
                    queue = resources.get(_target_of(event.get("Properties", {}).get("Queue")) or "", {})
                    if queue.get("Type") == "AWS::SQS::Queue" and not queue.get("Properties", {}).get("RedrivePolicy"):
                        matches.append(
                            RuleMatch(path, f"{logical_id}.Events.{name}: its queue has no RedrivePolicy (DLQ)")
                        )
        for logical_id, config in cfn.get_resources(["AWS::Lambda::EventInvokeConfig"]).items():
            props = config.get("Properties", {})
            if not props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"):
                matches.append(
                    RuleMatch(["Resources", logical_id], f"{logical_id}: no DestinationConfig.OnFailure.Destination")
                )
        return matches


def _log_groups_of(logical_id: str, props: dict[str, Any], groups: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The log groups a function writes to: ``LoggingConfig.LogGroup``, else ``/aws/lambda/<function>``."""
    configured = props.get("LoggingConfig", {}).get("LogGroup")
    for group_id, group in groups.items():
        name = group.get("Properties", {}).get("LogGroupName")
        named = configured is not None and (_mentions(configured, group_id) or configured == name)
        default = configured is None and "/aws/lambda/" in str(name) and _mentions(name, logical_id)
        if named or default:
            yield group


class FunctionOperationalBaseline(CloudFormationLintRule):
    """Every function is deployed through an alias, keeps its logs for a while and has a concurrency bound."""

    id = "E9004"
    shortdesc = "Function without alias, log retention or reserved concurrency"
    description = (
        "Each AWS::Serverless::Function needs AutoPublishAlias (callers invoke the alias, deployments "
        "shift it), a log group with RetentionInDays (/aws/lambda/<function>, or the template's group "
        "LoggingConfig.LogGroup names; a group of another stack is accepted) and ReservedConcurrentExecutions."
    )
    tags: ClassVar[list[str]] = ["sluice", "lambda", "operations"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        """One match per missing part of each function's baseline."""
        groups = cfn.get_resources(["AWS::Logs::LogGroup"])
        matches = []
        for logical_id, fn in cfn.get_resources(["AWS::Serverless::Function"]).items():
            props = fn.get("Properties", {})
            path: list[str | int] = ["Resources", logical_id]
            if not props.get("AutoPublishAlias"):
                matches.append(RuleMatch(path, f"{logical_id} has no alias: set AutoPublishAlias (Globals: live)"))
            if "ReservedConcurrentExecutions" not in props:
                matches.append(
                    RuleMatch(path, f"{logical_id} has no concurrency bound: set ReservedConcurrentExecutions")
                )
            own = list(_log_groups_of(logical_id, props, groups))
            # A LoggingConfig group of another stack keeps the retention that stack gives it.
            external = props.get("LoggingConfig", {}).get("LogGroup") is not None and not own
            if not external and not any(g.get("Properties", {}).get("RetentionInDays") for g in own):
                matches.append(
                    RuleMatch(path, f"{logical_id} keeps its logs forever: its log group needs RetentionInDays")
                )
        return matches
