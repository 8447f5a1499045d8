"""The Start function's domain: every event shape, URL-decoded keys, deterministic run ids."""

import json
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from sluice.contracts import load_contracts
from sluice.pipeline.ingest import UnrecognisedEventError, is_sqs_event, run_input_for, sources_in, start_runs
from tests.fakes import MemoryExecutions

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = load_contracts(ROOT / "contracts")
ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:pipeline"


def event(name: str) -> dict:
    return json.loads((ROOT / "events" / name).read_text())


def test_s3_notification_records_are_url_decoded():
    e = event("s3.json")
    e["Records"][0]["s3"]["object"]["key"] = "orders/my+file%281%29.csv"
    [src] = sources_in(e)
    assert src["key"] == "orders/my file(1).csv"
    assert src["bucket"] == "${RawBucket}"
    assert src["etag"] == "0123456789abcdef0123456789abcdef"


def test_eventbridge_object_created():
    [src] = sources_in(event("eventbridge-object-created.json"))
    assert src == {
        "bucket": "${RawBucket}",
        "key": "orders/orders-2026-11-02.csv",
        "version_id": None,
        "etag": "b1946ac92492d2347c6235b4d2611184",
        "size": 13017,
        "sequencer": "00617F08299329D189",
    }


@pytest.mark.parametrize("key", ["orders/a+b.csv", "orders/pct%41.csv", "orders/my file.csv", "orders/zoë=1/../x.csv"])
def test_keys_are_read_as_each_source_encodes_them(key):
    """Fails if EventBridge keys are URL-decoded (a+b would load a b) or S3 records' are not."""
    bridge = event("eventbridge-object-created.json")
    bridge["detail"]["object"]["key"] = key
    assert [s["key"] for s in sources_in(bridge)] == [key]
    records = event("s3.json")
    records["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="/")
    assert [s["key"] for s in sources_in(records)] == [key]


def test_sqs_wrapping_eventbridge_is_recognised_and_unwrapped():
    e = event("sqs-object-created.json")
    assert is_sqs_event(e)
    assert not is_sqs_event(event("s3.json"))
    [src] = sources_in(json.loads(e["Records"][0]["body"]))
    assert src["key"] == "orders/orders-2026-11-02.csv"


def test_s3_test_event_and_deletes_start_nothing():
    assert list(sources_in({"Event": "s3:TestEvent", "Bucket": "b"})) == []
    e = event("s3.json")
    e["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert list(sources_in(e)) == []


def test_unknown_shape_is_a_clear_error():
    with pytest.raises(UnrecognisedEventError, match="neither S3 notification"):
        list(sources_in({"hello": "world"}))


def test_unknown_dataset_still_gets_a_run():
    run = run_input_for({"bucket": "raw", "key": "inbox/x.csv", "etag": "e1"}, CONTRACTS)
    assert run["dataset"] == "unknown"
    assert run["run_id"].startswith("unknown-x-")


def test_duplicate_event_starts_nothing_new():
    executions = MemoryExecutions()
    e = event("eventbridge-object-created.json")
    first = start_runs(e, CONTRACTS, executions, ARN)
    second = start_runs(e, CONTRACTS, executions, ARN)
    assert [s.started for s in first] == [True]
    assert [s.started for s in second] == [False]
    assert first[0].run_id == second[0].run_id
    assert len(executions.started) == 1


def test_every_upload_is_a_run_whatever_its_content():
    """The same bytes dropped again (after a failed run, or after another version) run again."""
    executions = MemoryExecutions()
    a = event("eventbridge-object-created.json")
    a["detail"]["object"]["version-id"] = "v1"
    b = json.loads(json.dumps(a))
    b["detail"]["object"].update({"etag": "ffff", "version-id": "v2"})
    again = json.loads(json.dumps(a))
    again["detail"]["object"]["version-id"] = "v3"
    started = [start_runs(ev, CONTRACTS, executions, ARN) for ev in (a, b, again, a)]
    assert [s.started for [s] in started] == [True, True, True, False]
    assert len(executions.started) == 3
    assert executions.started[started[2][0].run_id]["source"]["version_id"] == "v3"
