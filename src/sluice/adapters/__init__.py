"""Adapters: the only place sluice talks to AWS (boto3)."""
