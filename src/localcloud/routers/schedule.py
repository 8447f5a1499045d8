"""Schedules fire on demand: ``tick`` sends each scheduled target its event now."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from localcloud.events import scheduled_event
from localcloud.pool import FunctionPool, InvokeResult
from localcloud.routers import ClientFactory

FindPool = Callable[[str], FunctionPool | None]


@dataclass(frozen=True)
class ScheduledTarget:
    """A rule (or schedule) with a schedule expression and one of our functions as target."""

    rule_name: str
    rule_arn: str
    expression: str
    function: str
    input: str | None


class ScheduleRouter:
    """EventBridge schedule rules whose targets are deployed functions."""

    def __init__(self, client: ClientFactory, find_pool: FindPool, region: str, account: str) -> None:
        self._events = client("events")
        self._find_pool = find_pool
        self._region = region
        self._account = account

    def targets(self) -> list[ScheduledTarget]:
        """Enabled schedule rules' Lambda targets that this local cloud runs."""
        found = []
        for page in self._events.get_paginator("list_rules").paginate():
            for rule in page["Rules"]:
                if not rule.get("ScheduleExpression") or rule.get("State") != "ENABLED":
                    continue
                for target in self._events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                    if self._find_pool(target["Arn"]) is None:
                        continue
                    found.append(
                        ScheduledTarget(
                            rule["Name"], rule["Arn"], rule["ScheduleExpression"], target["Arn"], target.get("Input")
                        )
                    )
        return found

    def tick(self, at: datetime | None = None, detail: dict[str, Any] | None = None) -> list[InvokeResult]:
        """Invoke every scheduled target once with its ``Input`` or a real ``Scheduled Event`` (time `at`, `detail`)."""
        results = []
        for target in self.targets():
            pool = self._find_pool(target.function)
            if pool is None:
                continue
            event: Any = (
                json.loads(target.input)
                if target.input
                else scheduled_event(
                    target.rule_arn, self._region, self._account, at.timestamp() if at else None, detail
                )
            )
            results.append(pool.invoke(event))
        return results
