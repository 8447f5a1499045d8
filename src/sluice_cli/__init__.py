"""The ``sluice`` developer CLI (dev-only: never shipped to Lambda)."""
