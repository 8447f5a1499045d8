"""The CloudWatch alarms of a stack and what their metrics say (``sluice demo`` ends with them).

The local cloud creates the template's alarms in moto's CloudWatch, which does not evaluate them:
they stay ``INSUFFICIENT_DATA``. Beside each state the latest datapoint of the alarm's metric (if
any was put) shows what an evaluation would look at.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from rich.table import Table

NO_ALARMS = "no alarms defined"
_SUFFIX = re.compile(r"-[A-Z0-9]{12,13}$")
LOOKBACK = timedelta(hours=3)


@dataclass(frozen=True)
class AlarmState:
    """One alarm: its state and reason, and the latest datapoint of its metric."""

    name: str
    state: str
    reason: str
    metric: str  # Namespace/MetricName (a metric math alarm: its expression ids)
    latest: str  # "<value> at <time>", or "no datapoints"


def _latest(cloudwatch: Any, alarm: dict[str, Any], now: datetime) -> str:
    stat, extended = alarm.get("Statistic"), alarm.get("ExtendedStatistic")
    if not alarm.get("MetricName") or not (stat or extended):  # metric math: not looked up
        return "-"
    kwargs: dict[str, Any] = {"Statistics": [stat]} if stat else {"ExtendedStatistics": [extended]}
    try:
        points = cloudwatch.get_metric_statistics(
            Namespace=alarm["Namespace"],
            MetricName=alarm["MetricName"],
            Dimensions=alarm.get("Dimensions", []),
            StartTime=now - LOOKBACK,
            EndTime=now + timedelta(minutes=1),
            Period=int(alarm.get("Period", 60)),
            **kwargs,
        )["Datapoints"]
    except ClientError:  # a statistic the local cloud cannot compute
        return "-"
    if not points:
        return "no datapoints"
    last = max(points, key=lambda p: p["Timestamp"])
    value = last[stat] if stat else last.get("ExtendedStatistics", {}).get(extended)
    if value is None:
        return "-"
    return f"{stat or extended} {value:g} at {last['Timestamp']:%H:%M} UTC (threshold {alarm.get('Threshold', 0):g})"


def alarm_states(cloudwatch: Any, now: datetime | None = None) -> list[AlarmState]:
    """Every metric alarm, by name."""
    now = now or datetime.now(UTC)
    found: list[AlarmState] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
        for alarm in page.get("MetricAlarms", []):
            metric = (
                f"{alarm['Namespace']}/{alarm['MetricName']}"
                if alarm.get("MetricName")
                else ",".join(q["Id"] for q in alarm.get("Metrics", []))
            )
            found.append(
                AlarmState(
                    name=alarm["AlarmName"],
                    state=alarm.get("StateValue", "INSUFFICIENT_DATA"),
                    reason=alarm.get("StateReason", ""),
                    metric=metric,
                    latest=_latest(cloudwatch, alarm, now),
                )
            )
    return sorted(found, key=lambda a: a.name)


def short_name(name: str) -> str:
    """An alarm name without CloudFormation's random suffix (``stack-LogicalId-1A2B3C4D5E6F``)."""
    return _SUFFIX.sub("", name)


def alarm_table(states: list[AlarmState]) -> Table | str:
    """A table of the alarms, or :data:`NO_ALARMS`; a reason every alarm shares goes to the title."""
    if not states:
        return NO_ALARMS
    counts = Counter(a.state for a in states)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    reasons = {a.reason for a in states}
    shared = f"; reason: {reasons.pop()}" if len(reasons) == 1 else ""
    table = Table(title=f"CloudWatch alarms: {summary}{shared} (the local cloud does not evaluate them)")
    table.add_column("alarm", no_wrap=True)
    table.add_column("state", no_wrap=True)
    if not shared:
        table.add_column("reason", max_width=40, overflow="ellipsis", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column("latest datapoint")
    colour = {"OK": "green", "ALARM": "red"}
    for a in states:
        style = colour.get(a.state, "yellow")
        cells = [short_name(a.name), f"[{style}]{a.state}[/]", *([] if shared else [a.reason]), a.metric, a.latest]
        table.add_row(*cells)
    return table
