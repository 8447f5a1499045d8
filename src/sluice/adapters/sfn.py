"""Step Functions adapter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sluice.adapters.clients import client


class StepFunctions:
    """:class:`sluice.ports.Executions` on AWS Step Functions."""

    def __init__(self) -> None:
        self._sfn = client("stepfunctions")

    def start(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> bool:
        """Start execution `name`; False if it already exists (a duplicate event)."""
        try:
            self._sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
        except self._sfn.exceptions.ExecutionAlreadyExists:
            return False
        return True
