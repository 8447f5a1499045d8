"""sluice house rules for cfn-lint (``cfn-lint --append-rules tools/lint/rules template.yaml``).

cfn-lint 1.x validates SAM templates as written (Globals merged, no SAM transform), so the rules
look at ``AWS::Serverless::Function`` and its ``Events`` as well as the plain CloudFormation types.
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
