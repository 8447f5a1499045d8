"""Raises what the input asks for, so the state machine's Retry/Catch and the bridge's errors are testable."""

import os
import time


class BadInputError(Exception):
    """Caught by name in the state machine."""


def handler(event, context):
    mode = event.get("mode", "ok")
    print(f"flaky mode={mode} remaining_ms={context.get_remaining_time_in_millis()}")
    if mode == "bad":
        raise BadInputError(f"input rejected: {event.get('why', 'no reason')}")
    if mode == "sleep":
        time.sleep(float(event.get("seconds", 5)))
    if mode == "exit":
        os._exit(3)
    if mode == "unserializable":
        return {"value": object()}
    keys = (
        "AWS_ENDPOINT_URL",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_REGION",
        "RESULTS_TABLE",
        "POWERTOOLS_TRACE_DISABLED",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "CONTRACTS_DIR",
    )
    return {
        "ok": True,
        "pid": os.getpid(),
        "env": {k: os.environ.get(k) for k in keys},
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "input": event,
    }
