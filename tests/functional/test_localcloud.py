"""The local cloud deploys a SAM template and runs its handlers the way AWS would.

A tiny stack (localcloud_fixtures/template.yaml) exercises each route: Invoke through the bridge,
Step Functions catching a handler's custom error, SQS partial batch failures with redrive, a
Kinesis tumbling window with a poison record, a schedule, and S3 → EventBridge → SQS.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.remote import RemoteCloud

FIXTURES = Path(__file__).parent / "localcloud_fixtures"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteCloud]:
    with RemoteCloud.spawn(
        FIXTURES, stack_name="lc-fixture", workers_per_function=2, log_dir=tmp_path_factory.mktemp("logs")
    ) as c:
        yield c


def items(cloud: RemoteCloud, prefix: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    des = TypeDeserializer()
    rows = cloud.client("dynamodb").scan(TableName=cloud.resources["ResultsTable"])["Items"]
    found = [{k: des.deserialize(v) for k, v in row.items()} for row in rows]
    return sorted((r for r in found if r["pk"].startswith(prefix)), key=lambda r: r["pk"])


def drain(cloud: RemoteCloud, queue: str) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=cloud.resources[queue], MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    ):
        messages += batch
        for m in batch:
            sqs.delete_message(QueueUrl=cloud.resources[queue], ReceiptHandle=m["ReceiptHandle"])
    return messages


def test_resources_come_from_the_template_including_what_moto_skips(cloud: RemoteCloud) -> None:
    res = cloud.resources
    assert res["EchoFunction"].startswith("lc-fixture-EchoFunction-")
    assert res["EchoQueue"].startswith("https://") and res["FlakyMachine"].startswith("arn:aws:states:")
    assert res["Catalog"] == "lc_60"  # Glue database: created after deploy, name resolved from !Sub
    assert cloud.client("glue").get_database(Name="lc_60")["Database"]["Name"] == "lc_60"
    config = cloud.client("lambda").get_function_configuration(FunctionName=res["EchoFunction"])
    assert config["Environment"]["Variables"]["GREETING"] == "hello from lc-fixture"
    # CloudWatch alarm (the local cloud registers a CloudFormation model for it), its dimension resolved
    # named as CloudFormation names an alarm without AlarmName: <stack>-<logical id>-<random suffix>
    assert res["EchoErrorsAlarm"].startswith("lc-fixture-EchoErrorsAlarm-")
    (alarm,) = cloud.client("cloudwatch").describe_alarms(AlarmNames=[res["EchoErrorsAlarm"]])["MetricAlarms"]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": res["EchoFunction"]}]
    assert (alarm["EvaluationPeriods"], alarm["Threshold"], alarm["StateValue"]) == (1, 0.0, "INSUFFICIENT_DATA")
    assert alarm["AlarmActions"] == []  # Fn::If on a false condition: AWS::NoValue
    assert "PagedAlarm" not in res  # a resource whose Condition is false
    assert len(cloud.client("cloudwatch").describe_alarms()["MetricAlarms"]) == 1


def test_invoke_runs_the_handler_with_the_deployed_environment_and_a_context(cloud: RemoteCloud) -> None:
    result = cloud.invoke("FlakyFunction", {"mode": "ok"})
    assert result.function_error is None
    out = result.payload
    assert out["env"] == {
        "AWS_ENDPOINT_URL": cloud.endpoint,
        "AWS_LAMBDA_FUNCTION_NAME": cloud.resources["FlakyFunction"],
        "AWS_REGION": "us-east-1",
        "RESULTS_TABLE": cloud.resources["ResultsTable"],
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "CONTRACTS_DIR": str(FIXTURES / "contracts"),  # /opt/contracts -> the repository's contracts/
    }
    assert out["function_name"] == cloud.resources["FlakyFunction"] and out["memory"] == "256"
    assert out["arn"].endswith(f":function:{cloud.resources['FlakyFunction']}")
    assert 0 < out["remaining_ms"] <= 2000  # the template's Timeout: 2
    assert "flaky mode=ok" in result.logs_tail and "END RequestId: " in result.logs_tail
    by_name = cloud.invoke(cloud.resources["FlakyFunction"], {"mode": "ok"})
    assert by_name.payload["pid"] == out["pid"]  # warm worker reused


def test_an_unhandled_exception_reports_its_class_name_as_error_type(cloud: RemoteCloud) -> None:
    result = cloud.invoke("FlakyFunction", {"mode": "bad", "why": "header"})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "BadInputError"
    assert result.payload["errorMessage"] == "input rejected: header"
    assert "functions/flaky/app.py" in result.payload["stackTrace"][0]  # starts in the handler
    assert "BadInputError" in result.logs_tail


def test_timeouts_and_crashes_are_lambda_errors_and_the_worker_is_replaced(cloud: RemoteCloud) -> None:
    before = cloud.invoke("FlakyFunction", {"mode": "ok"}).payload["pid"]
    timed_out = cloud.invoke("FlakyFunction", {"mode": "sleep", "seconds": 5})
    assert (timed_out.function_error, timed_out.payload["errorType"]) == ("Unhandled", "Sandbox.Timedout")
    assert "Task timed out after 2.00 seconds" in timed_out.payload["errorMessage"]
    crashed = cloud.invoke("FlakyFunction", {"mode": "exit"})
    assert crashed.payload["errorType"] == "Runtime.ExitError" and "exit status 3" in crashed.payload["errorMessage"]
    bad = cloud.invoke("FlakyFunction", {"mode": "unserializable"})
    assert bad.payload["errorType"] == "Runtime.MarshalError"
    after = cloud.invoke("FlakyFunction", {"mode": "ok"})
    assert after.function_error is None and after.payload["pid"] != before


def test_the_lambda_api_reaches_the_handler_through_the_bridge(cloud: RemoteCloud) -> None:
    lam = cloud.client("lambda")
    ok = lam.invoke(FunctionName=cloud.resources["FlakyFunction"], Payload=json.dumps({"mode": "ok"}))
    assert "FunctionError" not in ok and json.load(ok["Payload"])["input"] == {"mode": "ok"}
    arn = lam.get_function(FunctionName=cloud.resources["FlakyFunction"])["Configuration"]["FunctionArn"]
    bad = lam.invoke(FunctionName=arn, Payload=json.dumps({"mode": "bad"}), LogType="Tail")
    assert bad["FunctionError"] == "Unhandled"
    assert json.load(bad["Payload"])["errorType"] == "BadInputError"
    assert "flaky mode=bad" in base64.b64decode(bad["LogResult"]).decode()
    queued = lam.invoke(FunctionName=arn, Payload=b"{}", InvocationType="Event")
    assert queued["StatusCode"] == 202
    cloud.wait_idle(30)


def test_the_state_machine_catches_the_handler_error_by_class_name(cloud: RemoteCloud) -> None:
    sfn = cloud.client("stepfunctions")
    arn = cloud.resources["FlakyMachine"]
    for mode in ("ok", "bad", "sleep"):
        sfn.start_execution(stateMachineArn=arn, name=f"mode-{mode}", input=json.dumps({"mode": mode, "seconds": 5}))
    cloud.wait_idle(60)
    runs = {
        e["name"]: sfn.describe_execution(executionArn=e["executionArn"])
        for e in sfn.list_executions(stateMachineArn=arn)["executions"]
    }

    assert runs["mode-ok"]["status"] == "SUCCEEDED"
    assert json.loads(runs["mode-ok"]["output"])["env"]["AWS_ENDPOINT_URL"] == cloud.endpoint
    rejected = json.loads(runs["mode-bad"]["output"])
    assert runs["mode-bad"]["status"] == "SUCCEEDED" and rejected["outcome"] == "rejected"
    assert rejected["error"]["Error"] == "BadInputError"
    assert json.loads(rejected["error"]["Cause"])["errorMessage"] == "input rejected: no reason"
    assert (runs["mode-sleep"]["status"], runs["mode-sleep"]["error"]) == ("FAILED", "Broken")
    history = sfn.get_execution_history(executionArn=runs["mode-sleep"]["executionArn"])["events"]
    failed = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert failed == ["Sandbox.Timedout"]


def test_sqs_batches_delete_successes_and_redrive_reported_failures(cloud: RemoteCloud) -> None:
    sqs = cloud.client("sqs")
    for body in ("a", "b", "fail-1", "c"):
        sqs.send_message(QueueUrl=cloud.resources["EchoQueue"], MessageBody=body)
    cloud.wait_idle(60)

    stored = items(cloud, "echo#")
    assert [r["pk"] for r in stored] == ["echo#a", "echo#b", "echo#c"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=cloud.resources["EchoQueue"], AttributeNames=["QueueArn"])
    assert {r["source"] for r in stored} == {queue_arn["Attributes"]["QueueArn"]}
    assert len({r["request"] for r in stored}) == 1  # one batch (BatchSize 5, batching window 1 s)
    dead = drain(cloud, "EchoDeadLetterQueue")
    assert [m["Body"] for m in dead] == ["fail-1"]  # after maxReceiveCount=2 receives


def test_kinesis_windows_count_every_record_once_and_isolate_the_poison(cloud: RemoteCloud) -> None:
    kinesis = cloud.client("kinesis")
    stream = cloud.resources["CountStream"]
    expected: dict[str, int] = {}
    poison_at = None
    for i in range(40):
        key = f"key-{i % 5}"
        data = b"poison" if i == 17 else b"ok"
        put = kinesis.put_record(StreamName=stream, Data=data, PartitionKey=key)
        if i == 17:
            poison_at = (put["ShardId"], put["SequenceNumber"])
        else:
            expected[key] = expected.get(key, 0) + 1
    cloud.wait_idle(60)  # also closes the open windows

    windows = items(cloud, "window#")  # written by the final invocations (wait_idle flushed them)
    assert windows
    totals: dict[str, int] = {}
    for window in windows:
        for key, count in window["counts"].items():
            totals[key] = totals.get(key, 0) + int(count)
    assert totals == expected  # state carried across batches of 7, nothing counted twice
    (dead,) = [json.loads(m["Body"]) for m in drain(cloud, "WindowDeadLetterQueue")]
    info = dead["KinesisBatchInfo"]
    assert poison_at is not None
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"]) == (
        poison_at[0],
        poison_at[1],
        poison_at[1],
    )
    assert dead["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_tick_fires_the_schedule_with_a_scheduled_event(cloud: RemoteCloud) -> None:
    (result,) = cloud.tick()
    assert result.function_error is None
    assert result.payload["detail_type"] == "Scheduled Event" and result.payload["source"] == "aws.events"
    (rule,) = result.payload["resources"]
    assert rule.startswith("arn:aws:events:us-east-1:") and "TickFunctionHourly" in rule


def test_s3_object_created_reaches_the_queue_through_eventbridge(cloud: RemoteCloud) -> None:
    s3 = cloud.client("s3")
    s3.put_object(Bucket=cloud.resources["DropBucket"], Key="in/one.csv", Body=b"a,b\n")
    (message,) = drain(cloud, "DropQueue")
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["detail"]["bucket"]["name"] == cloud.resources["DropBucket"]
    assert event["detail"]["object"]["key"] == "in/one.csv"


def test_wait_idle_names_what_is_still_busy(cloud: RemoteCloud) -> None:
    sqs = cloud.client("sqs")
    sqs.send_message(QueueUrl=cloud.resources["EchoQueue"], MessageBody="fail-2")
    with pytest.raises(TimeoutError, match="EchoQueue"):
        cloud.wait_idle(0.5)
    cloud.wait_idle(60)
    assert [m["Body"] for m in drain(cloud, "EchoDeadLetterQueue")] == ["fail-2"]


def test_unknown_functions_are_reported(cloud: RemoteCloud) -> None:
    with pytest.raises(KeyError, match="NoSuchFunction"):
        cloud.invoke("NoSuchFunction", {})


def test_state_file_round_trip(cloud: RemoteCloud, tmp_path: Path) -> None:
    path = tmp_path / ".sluice" / "local.json"
    cloud.write_state(path)
    state = RemoteCloud.read_state(path)
    assert state["endpoint"] == cloud.endpoint and state["resources"] == cloud.resources
    assert state["stack"] == "lc-fixture" and state["pid"] == cloud.pid
    attached = RemoteCloud.attach(path)
    assert attached.invoke("TickFunction", {}).payload["detail_type"] is None
    attached.stop()  # not the owner: leaves the cloud running
    assert cloud.invoke("TickFunction", {}).function_error is None


def test_startup_is_quick(cloud: RemoteCloud) -> None:
    started = time.monotonic()
    with RemoteCloud.spawn(FIXTURES, stack_name="lc-second") as second:
        elapsed = time.monotonic() - started
        assert second.endpoint != cloud.endpoint
    assert elapsed < 30, f"local cloud took {elapsed:.1f} s to start"


def test_request_faults_throttle_or_cut_the_matching_requests_only(cloud: RemoteCloud) -> None:
    """The test-only hook behind the e2e retry tests: an S3 GET throttled, or reset mid-body."""
    from botocore.config import Config
    from botocore.exceptions import ClientError, ResponseStreamingError

    from sluice.adapters.s3 import S3Store
    from sluice.errors import TransientError

    s3 = cloud.client("s3")
    one_try = s3_client(cloud, Config(retries={"total_max_attempts": 1}))
    s3.create_bucket(Bucket="request-faults")
    data = bytes(range(256)) * 400
    s3.put_object(Bucket="request-faults", Key="t/object.bin", Body=data)

    armed = cloud.inject_request_fault("t/object.bin", ranged=False, times=2)
    assert (armed["status"], armed["code"]) == (503, "SlowDown")
    assert (
        one_try.get_object(Bucket="request-faults", Key="t/object.bin", Range="bytes=0-9")["Body"].read() == data[:10]
    )
    for _ in range(2):
        with pytest.raises(ClientError) as throttled:
            one_try.get_object(Bucket="request-faults", Key="t/object.bin")
        assert throttled.value.response["Error"]["Code"] == "SlowDown"
        assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert one_try.get_object(Bucket="request-faults", Key="t/object.bin")["Body"].read() == data  # times=2: spent

    cloud.inject_request_fault("t/object.bin", reset_after=1000, times=2)
    with pytest.raises(ResponseStreamingError):
        one_try.get_object(Bucket="request-faults", Key="t/object.bin")["Body"].read()
    store = S3Store.__new__(S3Store)
    store._s3 = one_try
    with (
        pytest.raises(TransientError, match="AWS connection failed"),
        store.open("request-faults", "t/object.bin") as f,
    ):
        f.read()
    assert cloud.clear_faults() == []  # both spent, so disarmed


def s3_client(cloud: RemoteCloud, config: Any) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=cloud.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )
