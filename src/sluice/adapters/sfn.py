"""Step Functions adapter."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sluice.adapters.clients import client

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient


class StepFunctions:
    """:class:`sluice.ports.Executions` on AWS Step Functions."""

    def __init__(self, *, quick: bool = False) -> None:
        self._sfn: SFNClient = client("stepfunctions", quick=quick)

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> bool:
        """Start execution `name`; False if it already exists (a duplicate event)."""
        try:
            self._sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
        except self._sfn.exceptions.ExecutionAlreadyExists:
            return False
        return True

    def ended_badly_since(self, state_machine_arn: str, since: datetime) -> Iterator[dict[str, Any]]:
        """Failed, timed-out and aborted executions that stopped since `since`, newest first per status."""
        for status in ("FAILED", "TIMED_OUT", "ABORTED"):
            pages = self._sfn.get_paginator("list_executions").paginate(
                stateMachineArn=state_machine_arn, statusFilter=status
            )
            for page in pages:
                for execution in page["executions"]:
                    stopped = execution.get("stopDate")
                    if stopped is not None and stopped < since:
                        break
                    detail = self._sfn.describe_execution(executionArn=execution["executionArn"])
                    try:
                        payload = json.loads(detail.get("input") or "{}")
                    except ValueError:
                        payload = {}
                    yield {
                        "name": execution["name"],
                        "status": status,
                        "stopped_at": stopped,
                        "error": detail.get("error") or status,
                        "cause": detail.get("cause") or "",
                        "input": payload if isinstance(payload, dict) else {},
                    }
                else:
                    continue
                break
