"""Embedded local cloud for sluice (dev-only; nothing under src/sluice or functions/ imports it).

``LocalCloud(project_root).start()`` serves moto on 127.0.0.1 (free port) behind a middleware, deploys
``template.yaml`` (SAM translated locally), and does what moto leaves to AWS:

- Lambda ``Invoke`` (from boto3, the state machines, the routers) runs the project's handler in a warm
  worker process per function (``worker.py``) with the deployed environment, from the source tree
  (``artifact="source"``) or the ``sam build`` output (``artifact="build"``, ``python -S``);
- SQS and Kinesis event-source mappings are polled with Lambda's semantics (``routers/``), schedules
  fire on ``tick()``, S3 → EventBridge → SQS is delivered by moto once the bucket's notification
  settings are applied after deploy (``postdeploy.py``, ``buckets.py``);
- ``wait_idle()`` blocks until queues, executions, stream pollers and invocations are done (and
  closes open tumbling windows); ``/_sluice/*`` routes let other processes drive it
  (``RemoteCloud``, ``sluice local ...``).

moto's state is global to a process: one local cloud per process, never alongside ``moto.mock_aws``
(which resets it). Tests use the ``local_cloud`` fixture (``localcloud.testing``), which runs it in a
subprocess. ``on_event(kind, data)`` receives ``ready``, ``deploy.applied|skipped|failed``,
``invoke``, ``invoked``, ``log``, ``sqs.batch``, ``kinesis.discarded``, ``kinesis.final_invoke_failed``,
``kinesis.invalid_response``, ``router.error`` and ``router.unsupported``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud
    from localcloud.pool import InvokeResult
    from localcloud.remote import RemoteCloud

__all__ = ["InvokeResult", "LocalCloud", "RemoteCloud"]


def __getattr__(name: str) -> Any:
    """Import lazily: ``RemoteCloud`` alone loads in a fraction of ``LocalCloud``'s 2 s (moto, samtranslator)."""
    if name == "LocalCloud":
        from localcloud.cloud import LocalCloud

        return LocalCloud
    if name == "RemoteCloud":
        from localcloud.remote import RemoteCloud

        return RemoteCloud
    if name == "InvokeResult":
        from localcloud.pool import InvokeResult

        return InvokeResult
    raise AttributeError(f"module 'localcloud' has no attribute {name!r}")
