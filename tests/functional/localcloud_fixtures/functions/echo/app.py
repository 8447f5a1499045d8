"""SQS consumer: stores each body in the results table; bodies starting with "fail" are reported failed."""

import os

import boto3

table = boto3.resource("dynamodb").Table(os.environ["RESULTS_TABLE"])


def handler(event, context):
    failures = []
    for record in event["Records"]:
        body = record["body"]
        print(f"echo {body} receive={record['attributes']['ApproximateReceiveCount']}")
        if body.startswith("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        table.put_item(
            Item={
                "pk": f"echo#{body}",
                "greeting": os.environ["GREETING"],
                "source": record["eventSourceARN"],
                "request": context.aws_request_id,
            }
        )
    return {"batchItemFailures": failures}
