"""The project's own template.yaml deploys on the local cloud (the ``local_cloud`` fixture).

Only the deployment is checked here, not the handlers: every resource exists under its logical id,
functions carry the template's environment, the state machine has its substitutions rendered and
runs on the real ASL engine, event-source mappings and schedules are routed.
"""

from __future__ import annotations

import json
from pathlib import Path

from localcloud.deploy import load_template
from localcloud.remote import RemoteCloud

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
# Created by nothing locally: policies are not enforced, layers are loaded from disk.
NOT_CREATED = {"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::Serverless::LayerVersion"}


def test_every_resource_of_the_template_exists(local_cloud: RemoteCloud) -> None:
    expected = {lid for lid, res in TEMPLATE["Resources"].items() if res["Type"] not in NOT_CREATED}
    assert expected - set(local_cloud.resources) == set()
    assert all(local_cloud.resources[lid] for lid in expected)


def test_functions_get_the_template_environment(local_cloud: RemoteCloud) -> None:
    res = local_cloud.resources
    lam = local_cloud.client("lambda")
    for lid, resource in TEMPLATE["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        config = lam.get_function_configuration(FunctionName=res[lid])
        env = config["Environment"]["Variables"]
        assert env["RAW_BUCKET"] == res["RawBucket"] and env["RUNS_TABLE"] == res["RunsTable"], lid
        timeout = resource["Properties"].get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"])
        assert config["Timeout"] == timeout, lid
    start = lam.get_function_configuration(FunctionName=res["StartFunction"])["Environment"]["Variables"]
    assert start["STATE_MACHINE_ARN"] == res["PipelineStateMachine"]


def test_the_state_machine_has_its_function_arns_substituted(local_cloud: RemoteCloud) -> None:
    sfn = local_cloud.client("stepfunctions")
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=local_cloud.resources["PipelineStateMachine"])["definition"]
    )
    source = json.loads((ROOT / "statemachines/pipeline.asl.json").read_text())
    assert definition["StartAt"] == source["StartAt"] and definition.keys() == source.keys()
    for state in ("Validate", "Transform", "Summarize", "Publish", "RecordFailure"):
        name = definition["States"][state]["Parameters"]["FunctionName"]
        assert name.endswith(f":function:{local_cloud.resources[state + 'Function']}:live"), state  # the alias


def test_event_sources_and_schedules_are_mapped_as_declared(local_cloud: RemoteCloud) -> None:
    res = local_cloud.resources
    mappings = local_cloud.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    # Mapped to the live alias (moto lists the version it points at): function:<name>:<qualifier>.
    by_function = {m["FunctionArn"].split(":function:", 1)[1].split(":")[0]: m for m in mappings}
    assert all(m["FunctionArn"].count(":") == 7 for m in mappings)
    ingest = by_function[res["StartFunction"]]
    assert ingest["EventSourceArn"].endswith(res["IngestQueue"].rsplit("/", 1)[-1])
    assert ingest["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    aggregate = by_function[res["AggregateFunction"]]
    assert aggregate["TumblingWindowInSeconds"] == 60 and aggregate["BisectBatchOnFunctionError"] is True
    assert aggregate["DestinationConfig"]["OnFailure"]["Destination"].endswith(
        res["AggregateDeadLetterQueue"].rsplit("/", 1)[-1]
    )
    events = local_cloud.client("events")
    targets = events.list_targets_by_rule(Rule=res["CleanupFunctionNightly"])["Targets"]
    assert [t["Arn"].split(":function:", 1)[1] for t in targets] == [f"{res['CleanupFunction']}:live"]
    assert targets[0]["DeadLetterConfig"]["Arn"].endswith(res["CleanupFailureQueue"].rsplit("/", 1)[-1])


def test_functions_have_their_live_alias_and_alarms(local_cloud: RemoteCloud) -> None:
    res = local_cloud.resources
    lam = local_cloud.client("lambda")
    functions = [lid for lid, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    for lid in functions:
        assert [a["Name"] for a in lam.list_aliases(FunctionName=res[lid])["Aliases"]] == ["live"], lid
    alarms = local_cloud.client("cloudwatch").describe_alarms()["MetricAlarms"]
    declared = {lid for lid, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {a["AlarmName"] for a in alarms} == {res[lid] for lid in declared}


def test_query_resources_moto_skips_are_created_after_deploy(local_cloud: RemoteCloud) -> None:
    res = local_cloud.resources
    glue = local_cloud.client("glue")
    table = glue.get_table(DatabaseName=res["AnalyticsDatabase"], Name=res["OrdersGlueTable"])["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{res['CuratedBucket']}/orders/"
    assert table["Parameters"]["storage.location.template"].endswith("/orders/order_date=${order_date}/")
    group = local_cloud.client("athena").get_work_group(WorkGroup=res["AnalyticsWorkGroup"])["WorkGroup"]
    location = group["Configuration"]["ResultConfiguration"]["OutputLocation"]
    assert location == f"s3://{res['WorkBucket']}/athena/"
