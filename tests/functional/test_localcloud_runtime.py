"""Pieces of the local cloud that need no server: event shapes, intrinsics, artifacts and workers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from localcloud.deploy import DeployedFunction, load_template, translate
from localcloud.events import scheduled_event, sqs_record
from localcloud.intrinsics import UnresolvableError, resolve
from localcloud.pool import FunctionPool
from localcloud.routers.sqs import failed_message_ids
from localcloud.runtime import Layout, function_spec

ROOT = Path(__file__).resolve().parents[2]
SDK = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "us-east-1"}


def test_sqs_record_has_the_lambda_event_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "hi",
        "MD5OfBody": "x",
        "Attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1",
            "SenderId": "s",
            "ApproximateFirstReceiveTimestamp": "2",
            "Unrelated": "no",
        },
        "MD5OfMessageAttributes": "y",
        "MessageAttributes": {
            "n": {"DataType": "Number", "StringValue": "3"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    record = sqs_record(message, "arn:aws:sqs:us-east-1:1:q", "us-east-1")
    assert record == {
        "messageId": "m1",
        "receiptHandle": "r1",
        "body": "hi",
        "md5OfBody": "x",
        "md5OfMessageAttributes": "y",
        "attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1",
            "SenderId": "s",
            "ApproximateFirstReceiveTimestamp": "2",
        },
        "messageAttributes": {
            "n": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
            "b": {
                "binaryValue": base64.b64encode(b"\x00\x01").decode(),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
        "awsRegion": "us-east-1",
    }


def test_scheduled_event_shape() -> None:
    moment = datetime(2026, 11, 1, 3, 15, tzinfo=UTC).timestamp()
    event = scheduled_event("arn:aws:events:us-east-1:1:rule/r", "us-east-1", "1", now=moment)
    assert {k: v for k, v in event.items() if k != "id"} == {
        "version": "0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "1",
        "time": "2026-11-01T03:15:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:1:rule/r"],
        "detail": {},
    }


@pytest.mark.parametrize(
    ("payload", "error", "partial", "failed"),
    [
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, None, True, {"b"}),
        ({"batchItemFailures": []}, None, True, set()),
        (None, None, True, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, None, False, set()),  # not enabled: ignored
        ({"batchItemFailures": [{"itemIdentifier": "zz"}]}, None, True, {"a", "b"}),  # unknown id: all fail
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None, True, {"a", "b"}),
        ({"errorType": "ValueError"}, "Unhandled", True, {"a", "b"}),
    ],
)
def test_sqs_batch_item_failures(payload: Any, error: str | None, partial: bool, failed: set[str]) -> None:
    assert failed_message_ids(payload, ["a", "b"], error, partial) == failed


def test_intrinsics_resolve_refs_subs_and_attributes() -> None:
    refs = {"Stage": "dev", "Bucket": "raw-1", "AWS::Region": "us-east-1"}

    def getatt(name: str, attr: str) -> str:
        return f"{name}.{attr}"

    value = {
        "A": {"Fn::Sub": "s3://${Bucket}/x/${!literal}/${AWS::Region}"},
        "B": {"Fn::Sub": ["${X}-${Q.Arn}", {"X": {"Ref": "Stage"}}]},
        "C": [{"Fn::GetAtt": ["Q", "Arn"]}, {"Fn::GetAtt": "Q.QueueName"}],
        "D": {"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]},
        "E": {"Fn::Select": [1, ["x", "y"]]},
    }
    assert resolve(value, refs, getatt) == {
        "A": "s3://raw-1/x/${literal}/us-east-1",
        "B": "dev-Q.Arn",
        "C": ["Q.Arn", "Q.QueueName"],
        "D": "a-dev",
        "E": "y",
    }
    with pytest.raises(UnresolvableError):
        resolve({"Fn::If": ["c", 1, 2]}, refs, getatt)
    with pytest.raises(UnresolvableError):
        resolve({"Ref": "Missing"}, refs, getatt)


def test_the_sam_translation_keeps_kinesis_mapping_settings() -> None:
    sam = load_template(ROOT / "template.yaml")
    for res in sam["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://b/k.zip"
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            res["Properties"]["ContentUri"] = "s3://b/k.zip"
        elif res["Type"] == "AWS::Serverless::StateMachine":
            res["Properties"]["DefinitionUri"] = "s3://b/asl.json"
    out = translate(sam, {}, "us-east-1")["Resources"]["AggregateFunctionStream"]["Properties"]
    assert out["TumblingWindowInSeconds"] == {"Ref": "AggregationWindowSeconds"}
    assert out["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and out["BisectBatchOnFunctionError"]


def fake_build(root: Path) -> DeployedFunction:
    """A ``sam build`` tree: one function, one layer with python/ and contracts/."""
    build = root / ".aws-sam" / "build"
    (build / "Fn").mkdir(parents=True)
    (build / "Fn" / "app.py").write_text(
        "import os, sys\n"
        "def handler(event, context):\n"
        "    import inlayer\n"
        "    found = {}\n"
        "    for name in event['modules']:\n"
        "        try:\n"
        "            __import__(name)\n"
        "            found[name] = True\n"
        "        except ImportError:\n"
        "            found[name] = False\n"
        "    return {'layer': inlayer.VALUE, 'found': found, 'contracts': os.environ['CONTRACTS_DIR'],\n"
        "            'cwd': os.getcwd(), 'no_site': sys.flags.no_site}\n"
    )
    (build / "Layer" / "python").mkdir(parents=True)
    (build / "Layer" / "python" / "inlayer.py").write_text("VALUE = 42\n")
    (build / "Layer" / "contracts").mkdir()
    (root / ".aws-sam" / "runtime" / "boto3").mkdir(parents=True)
    (root / ".aws-sam" / "runtime" / "boto3" / "__init__.py").write_text("")
    return DeployedFunction(
        "Fn", "stack-Fn-X", "arn:aws:lambda:us-east-1:1:function:stack-Fn-X", "functions/fn/", ("Layer",)
    )


def test_build_artifacts_run_with_only_the_code_the_layers_and_the_runtime(tmp_path: Path) -> None:
    fn = fake_build(tmp_path)
    layout = Layout(tmp_path, tmp_path, "build")
    config = {
        "Handler": "app.handler",
        "Timeout": 5,
        "MemorySize": 128,
        "Environment": {"Variables": {"CONTRACTS_DIR": "/opt/contracts", "OTHER": "/opt/nowhere"}},
    }
    spec = function_spec(fn, config, layout, SDK)
    assert spec.env["OTHER"] == "/opt/nowhere"
    pool = FunctionPool(spec, 1, tmp_path / "logs" / "Fn.log", lambda kind, data: None)
    try:
        result = pool.invoke({"modules": ["boto3", "yaml", "localcloud", "sluice"]})
    finally:
        pool.close()
    assert result.function_error is None, result.payload
    assert result.payload == {
        "layer": 42,
        "found": {"boto3": True, "yaml": False, "localcloud": False, "sluice": False},
        "contracts": str(tmp_path / ".aws-sam" / "build" / "Layer" / "contracts"),
        "cwd": str(tmp_path / ".aws-sam" / "build" / "Fn"),
        "no_site": 1,
    }
    assert "START RequestId" in (tmp_path / "logs" / "Fn.log").read_text()


def test_a_missing_build_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="sam build"):
        Layout(tmp_path, tmp_path, "build")
