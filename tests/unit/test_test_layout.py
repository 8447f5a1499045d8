"""The test tree itself: pytest imports test modules by basename (rootdir-relative, no packages)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert names, "no test module found"
    assert [n for n, count in names.items() if count > 1] == []
