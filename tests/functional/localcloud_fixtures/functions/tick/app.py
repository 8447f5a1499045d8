"""Scheduled function: returns the event it got."""


def handler(event, context):
    return {
        "detail_type": event.get("detail-type"),
        "source": event.get("source"),
        "resources": event.get("resources"),
        "time": event.get("time"),
    }
