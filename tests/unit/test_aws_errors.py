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
    """A DynamoRunTable over a stubbed table."""
    table = boto3.session.Session().resource("dynamodb", config=NO_RETRIES, **KEYS).Table("runs")
    adapter = DynamoRunTable.__new__(DynamoRunTable)
    adapter._name, adapter._table = "runs", table
    with Stubber(table.meta.client) as stub:
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
