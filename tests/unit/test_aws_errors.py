"""AWS failures in the S3 and runs-table adapters: throttling, 5xx and resets are TransientError; the rest stay."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError, ResponseStreamingError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from urllib3.exceptions import ProtocolError

from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.s3 import S3Store
from sluice.engine.transform import convert
from sluice.errors import TransientError
from tests.template_stack import ROOT
from tests.unit.conftest import build_contract

NO_RETRIES = Config(retries={"total_max_attempts": 1}, region_name="us-east-1")
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
GET = {"Bucket": "raw", "Key": "t/file.csv"}


@pytest.fixture
def s3() -> Iterator[tuple[S3Store, Stubber]]:
    """An S3Store over a stubbed client (no network, no botocore retries)."""
    store = S3Store.__new__(S3Store)
    store._s3 = boto3.session.Session().client("s3", config=NO_RETRIES, **KEYS)
    with Stubber(store._s3) as stub:
        yield store, stub


@pytest.fixture
def runs() -> Iterator[tuple[DynamoRunTable, Stubber]]:
    """A DynamoRunTable over a stubbed client."""
    adapter = DynamoRunTable.__new__(DynamoRunTable)
    adapter._name, adapter._ddb = "runs", boto3.session.Session().client("dynamodb", config=NO_RETRIES, **KEYS)
    with Stubber(adapter._ddb) as stub:
        yield adapter, stub


@pytest.mark.parametrize(("code", "status"), [("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503)])
def test_throttled_or_failing_s3_is_transient(s3: tuple[S3Store, Stubber], code: str, status: int) -> None:
    store, stub = s3
    stub.add_client_error("get_object", service_error_code=code, http_status_code=status, expected_params=GET)
    with pytest.raises(TransientError, match=code) as raised:
        store.open("raw", "t/file.csv")
    assert type(raised.value).__name__ == "TransientError"  # the name the state machine's Retry matches
    assert isinstance(raised.value.__cause__, ClientError)


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("NoSuchKey", 404)])
def test_permanent_s3_errors_stay(s3: tuple[S3Store, Stubber], code: str, status: int) -> None:
    store, stub = s3
    stub.add_client_error("get_object", service_error_code=code, http_status_code=status, expected_params=GET)
    with pytest.raises(ClientError, match=code):
        store.open("raw", "t/file.csv")


def test_a_throttled_listing_is_transient_while_it_iterates(s3: tuple[S3Store, Stubber]) -> None:
    store, stub = s3
    stub.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
    keys = store.list_keys("raw", "t/")
    with pytest.raises(TransientError, match="SlowDown"):
        next(keys)


def test_throttled_runs_table_is_transient(runs: tuple[DynamoRunTable, Stubber]) -> None:
    table, stub = runs
    stub.add_client_error("get_item", service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(TransientError, match="ThrottlingException"):
        table.get_run("r1")
    stub.add_client_error("put_item", service_error_code="ProvisionedThroughputExceededException")
    with pytest.raises(TransientError, match="ProvisionedThroughputExceeded"):
        table.put_run({"run_id": "r1", "status": "RUNNING"})
    stub.add_client_error("get_item", service_error_code="ValidationException", http_status_code=400)
    with pytest.raises(ClientError, match="ValidationException"):
        table.get_run("r1")


def test_an_unreachable_endpoint_is_transient() -> None:
    store = S3Store.__new__(S3Store)

    class Down:
        def head_object(self, **_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://s3.example")

    store._s3 = Down()
    with pytest.raises(TransientError, match="EndpointConnectionError"):
        store.head("raw", "t/file.csv")


class _Resets(io.RawIOBase):
    """A body that delivers `data`, then fails with `error` (a connection dropped mid-stream)."""

    def __init__(self, data: bytes, error: BaseException) -> None:
        self._data, self._error = data, error

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._data:
            out, self._data = self._data, b""
            return out
        raise self._error


RESETS = [
    ConnectionResetError(104, "Connection reset by peer"),
    ProtocolError("Connection broken", ConnectionResetError(104, "reset")),
    ResponseStreamingError(error="Connection broken: IncompleteRead"),
    ReadTimeoutError(endpoint_url="https://s3.example"),
]


@pytest.mark.parametrize("error", RESETS, ids=lambda e: type(e).__name__)
def test_a_reset_mid_stream_fails_the_conversion_as_transient(
    s3: tuple[S3Store, Stubber], error: BaseException, tmp_path: Path
) -> None:
    store, stub = s3
    data = b"a,b\n" + b"1,2\n" * 5000
    body = StreamingBody(_Resets(data, error), 10 * len(data))
    stub.add_response("get_object", {"Body": body, "ContentLength": 10 * len(data)}, GET)
    with pytest.raises(TransientError, match="AWS connection failed"):  # botocore wraps urllib3's errors
        convert(
            store.open("raw", "t/file.csv"),
            build_contract(["a", "b"]),
            run_id="run-1",
            source_name="s3://raw/t/file.csv",
            staging_dir=tmp_path,
        )


def test_the_state_machine_retries_transient_errors_in_transform() -> None:
    states = json.loads((ROOT / "statemachines" / "pipeline.asl.json").read_text(encoding="utf-8"))["States"]
    transform = states["Transform"]
    ranges = states["TransformRanges"]["ItemProcessor"]["States"]
    for state in [transform, *ranges.values()]:
        if state.get("Type") == "Task":
            assert any("TransientError" in r["ErrorEquals"] for r in state["Retry"])


# ---------------------------------------------------------------------------------------- managed uploads
@pytest.mark.parametrize(("code", "status", "raised"), [("SlowDown", 503, TransientError), ("AccessDenied", 403, None)])
def test_a_managed_upload_is_judged_by_the_error_it_wraps(
    s3: tuple[S3Store, Stubber], tmp_path: Path, code: str, status: int, raised: type[Exception] | None
) -> None:
    from boto3.exceptions import S3UploadFailedError

    store, stub = s3
    path = tmp_path / "part.parquet"
    path.write_bytes(b"PAR1")
    stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
    with pytest.raises(raised or S3UploadFailedError, match=code) as caught:
        store.upload_file(path, "curated", "t/part.parquet")
    if raised is None:
        assert type(caught.value) is S3UploadFailedError  # AccessDenied: not retried


# ---------------------------------------------------------------------------------------- Kinesis
def kinesis() -> tuple[Any, Stubber]:
    stream = boto3.session.Session().client("kinesis", config=NO_RETRIES, **KEYS)
    return stream, Stubber(stream)


def test_a_refused_put_records_is_transient_and_a_missing_stream_is_not() -> None:
    from sluice.adapters.kinesis import KinesisPublisher

    stream, stub = kinesis()
    publisher = KinesisPublisher("s", client=stream, sleep=lambda _: None)
    with stub:
        stub.add_client_error("put_records", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(TransientError, match="ProvisionedThroughputExceeded"):
            publisher.put([("k", b"x")])
        stub.add_client_error("put_records", service_error_code="ResourceNotFoundException")
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            publisher.put([("k", b"x")])


def test_entries_rejected_inside_an_answer_are_still_retried_with_backoff() -> None:
    from sluice.adapters.kinesis import KinesisPublisher

    stream, stub = kinesis()
    delays: list[float] = []
    publisher = KinesisPublisher("s", client=stream, sleep=delays.append)
    rejected = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
    accepted = {"SequenceNumber": "1", "ShardId": "shardId-0"}
    with stub:
        stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [accepted, rejected]})
        stub.add_response("put_records", {"Records": [accepted]})  # FailedRecordCount absent: none failed
        assert publisher.put([("a", b"1"), ("b", b"2")]) == 2
    assert publisher.retried == 1 and len(delays) == 1


# ---------------------------------------------------------------------------------------- aggregates table
@pytest.fixture
def aggregates() -> Iterator[tuple[Any, Stubber]]:
    """A DynamoAggregateStore over a stubbed client."""
    from sluice.adapters.aggregates_table import DynamoAggregateStore

    ddb = boto3.session.Session().client("dynamodb", config=NO_RETRIES, **KEYS)
    with Stubber(ddb) as stub:
        yield DynamoAggregateStore("aggregates", client=ddb), stub


def test_throttled_aggregates_table_is_transient_and_a_failed_condition_is_an_answer(
    aggregates: tuple[Any, Stubber],
) -> None:
    from sluice.aggregates.values import ItemKey

    store, stub = aggregates
    key = ItemKey("orders", 3600, 1_795_000_000, (("country", "DE"),))
    stub.add_client_error("get_item", service_error_code="ProvisionedThroughputExceededException")
    with pytest.raises(TransientError, match="ProvisionedThroughputExceeded"):
        store.get_aggregate(key)
    stub.add_client_error("query", service_error_code="InternalServerError", http_status_code=500)
    with pytest.raises(TransientError, match="InternalServerError"):
        store.list_contributions(key)
    stub.add_client_error("delete_item", service_error_code="ConditionalCheckFailedException")
    assert store.delete_aggregate(key, expected_rev=2) is False  # another writer moved first
    stub.add_client_error("delete_item", service_error_code="ValidationException")
    with pytest.raises(ClientError, match="ValidationException"):
        store.delete_aggregate(key, expected_rev=2)


# ---------------------------------------------------------------------------------------- runs table signals
def test_runs_table_conditions_stay_domain_signals(runs: tuple[DynamoRunTable, Stubber]) -> None:
    from sluice.errors import CommitConflictError
    from sluice.ports import Guard

    table, stub = runs
    stub.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
    assert table.transition("r1", ["RUNNING"], {"status": "FAILED"}) is False
    stub.add_client_error("transact_write_items", service_error_code="TransactionCanceledException")
    with pytest.raises(CommitConflictError):
        table.write_all([({"run_id": "r1", "rev": 2}, Guard(rev=1))])
