"""What `sluice demo` prints last: the alarms of moto's CloudWatch, their states and latest datapoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from rich.console import Console

from sluice_cli.alarms import NO_ALARMS, alarm_states, alarm_table, short_name


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def _rendered(table: Any) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_no_alarms_says_so(cloudwatch: Any) -> None:
    assert alarm_states(cloudwatch) == []
    assert alarm_table([]) == NO_ALARMS
    assert NO_ALARMS in _rendered(alarm_table(alarm_states(cloudwatch)))


def test_alarms_show_state_reason_and_latest_datapoint(cloudwatch: Any) -> None:
    alarm = {
        "AlarmDescription": "Transform failed",
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": "sluice-transform"}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "ActionsEnabled": False,
    }
    cloudwatch.put_metric_alarm(AlarmName="sluice-local-TransformErrorsAlarm", **alarm)
    cloudwatch.put_metric_alarm(**{**alarm, "MetricName": "Throttles", "AlarmName": "throttles"})
    p99 = {k: v for k, v in alarm.items() if k != "Statistic"}
    cloudwatch.put_metric_alarm(**{**p99, "ExtendedStatistic": "p99", "AlarmName": "slow"})
    now = datetime.now(UTC)
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": "sluice-transform"}],
                "Timestamp": now - timedelta(seconds=30),
                "Value": 2.0,
            }
        ],
    )
    states = alarm_states(cloudwatch, now=now)
    assert [s.name for s in states] == ["slow", "sluice-local-TransformErrorsAlarm", "throttles"]
    slow, errors, throttles = states
    assert slow.latest == "-"  # moto computes no percentiles: shown as unknown, not as a failure
    described = cloudwatch.describe_alarms(AlarmNames=[errors.name])["MetricAlarms"][0]
    assert (errors.state, errors.reason) == (described["StateValue"], described["StateReason"])
    assert errors.metric == "AWS/Lambda/Errors"
    assert errors.latest.startswith("Sum 2 at ") and "threshold 0" in errors.latest
    assert throttles.latest == "no datapoints"
    text = _rendered(alarm_table(states))
    assert "sluice-local-TransformErrorsAlarm" in text and errors.state in text and "Sum 2 at" in text


def test_short_names_drop_cloudformation_suffixes() -> None:
    assert short_name("sluice-local-TransformErrorsAlarm-N45ZZA983L0E") == "sluice-local-TransformErrorsAlarm"
    assert short_name("throttles") == "throttles"
