"""Publish function: put a committed run's partial aggregates on the Kinesis stream, once per run.

Exactness does not depend on running once: records carry run id, sequence, source and the run's
commit order, and the aggregator counts each (item, source) once. Powertools idempotency (keyed
by run id) only saves a duplicate invocation - a Step Functions retry after a lost response, a
redrive - from re-putting.
"""

from collections.abc import Callable
from functools import cache
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.clients import RETRIES
from sluice.adapters.kinesis import KinesisPublisher
from sluice.adapters.runs_table import DynamoRunTable
from sluice.adapters.s3 import S3Store
from sluice.pipeline.payloads import CommittedResult
from sluice.pipeline.publication import Published, publish_committed, publish_run
from sluice.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
USES = ("work_bucket", "runs_table", "stream_name", "idempotency_table")
IDEMPOTENCY = IdempotencyConfig(event_key_jmespath="run_id", expires_after_seconds=14 * 24 * 3600)


def _publish(run: CommittedResult, retired: list[str]) -> Published:
    stream = KinesisPublisher(settings().stream_name)
    return publish_run(run, S3Store(), stream, work_bucket=settings().work_bucket, retired=retired)


@cache
def _publish_once() -> Callable[..., Published]:
    """`_publish` guarded by Powertools idempotency (DynamoDB persistence), built once per process."""
    persistence = DynamoDBPersistenceLayer(table_name=settings().idempotency_table, boto_config=RETRIES)
    guard = idempotent_function(data_keyword_argument="run", persistence_store=persistence, config=IDEMPOTENCY)
    return cast(Callable[..., Published], guard(_publish))


@logger.inject_lambda_context(correlation_id_path="run_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: CommittedResult, context: LambdaContext) -> dict[str, Any]:
    """Publish the run's partials and mark it SUCCEEDED; returns the input plus ``records`` (and ``withdrawn``)."""
    IDEMPOTENCY.register_lambda_context(context)
    logger.append_keys(dataset=event["dataset"])
    runs = DynamoRunTable(settings().require(*USES).runs_table)
    published = publish_committed(event, runs, lambda run, retired: _publish_once()(run=run, retired=retired))
    metrics.add_metric("PartialsPublished", MetricUnit.Count, published["records"])
    logger.info("published", **published)
    return {**event, **published}
