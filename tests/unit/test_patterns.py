"""Fixed-width patterns over bytes: the same answers as RE2, for the subset they take."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.engine.patterns import compile_fixed, fixed_width_bytes, rows_of_width
from sluice.engine.rules import numbered_keys

# atoms of the subset, with the characters they may match (and some they must not)
ATOMS = [
    ("O", "O"),
    ("-", "-"),
    (r"\.", "."),
    (r"\d", "0123456789"),
    (r"\w", "aZ_9"),
    ("[0-9]", "0123456789"),
    ("[A-Z]", "AQZ"),
    ("[a-f0-9]", "af09"),
    ("[ACGT]", "ACGT"),
    ("[-x]", "-x"),
    (r"[\d.]", "7."),
    (" ", " "),
]
NOISE = "xX-._ 5é٣\n"  # é, ٣ (an Arabic-Indic digit: not \d in RE2) and \n change the byte width or the class


@st.composite
def pattern_and_values(draw):
    parts = draw(st.lists(st.tuples(st.sampled_from(ATOMS), st.integers(1, 4)), min_size=1, max_size=5))
    pattern = "^" + "".join(atom + (f"{{{n}}}" if n > 1 else "") for (atom, _), n in parts) + "$"
    good = st.just("").flatmap(
        lambda _: st.tuples(*[st.text(alphabet=chars, min_size=n, max_size=n) for (_, chars), n in parts])
    )
    values = draw(
        st.lists(
            st.one_of(
                good.map("".join),
                good.map("".join).flatmap(
                    lambda v: st.tuples(st.integers(0, max(0, len(v) - 1)), st.sampled_from(NOISE)).map(
                        lambda ic: v[: ic[0]] + ic[1] + v[ic[0] + 1 :]
                    )
                ),
            ),
            min_size=1,
            max_size=30,
        )
    )
    return pattern, values


@settings(max_examples=300, deadline=None)
@given(pattern_and_values())
def test_fixed_patterns_answer_like_re2(case):
    pattern, values = case
    fixed = compile_fixed(pattern)
    assert fixed is not None, pattern
    arr = pa.array(values, pa.string())
    expected = pc.match_substring_regex(arr, pattern).to_pylist()
    matrix = fixed_width_bytes(arr)
    if matrix is not None:
        assert fixed.matches(matrix).tolist() == expected
    else:
        assert len({len(v.encode()) for v in values}) > 1
    found = rows_of_width(arr, fixed.width)  # mixed widths: the rows of the pattern's width, the rest can't match
    assert found is not None
    rows, of_width = found
    got = [False] * len(values)
    for row, ok in zip(rows.tolist(), fixed.matches(of_width).tolist(), strict=True):
        got[row] = ok
    assert got == expected


@pytest.mark.parametrize(
    "pattern",
    [
        "O-[0-9]{10}",  # not anchored: search semantics
        "^O-[0-9]{10}",
        "^[0-9]+$",
        "^[0-9]{2,4}$",
        "^(DE|FR)$",
        "^.{3}$",
        "^[^a]$",
        "^a?$",
        "^\\s$",
        "^\\bx$",
        "(?i)^abc$",
        "^é$",
        "^[a-\\]]$",
        "^[\\d-x]$",
        "^[[:alpha:]]$",
        "^abc\\$",
    ],
)
def test_patterns_outside_the_subset_are_left_to_re2(pattern):
    assert compile_fixed(pattern) is None


def test_fixed_width_bytes_is_a_view_of_one_width_only():
    arr = pa.array(["xx", "AB", "CD", "EF"]).slice(1)
    matrix = fixed_width_bytes(arr)
    assert matrix is not None and matrix.shape == (3, 2)
    assert bytes(matrix.reshape(-1)) == b"ABCDEF"
    assert fixed_width_bytes(pa.array(["ab", "abc"])) is None
    assert fixed_width_bytes(pa.array(["ab", None])) is None
    assert fixed_width_bytes(pa.array(["", ""])) is None
    assert fixed_width_bytes(pa.array([], pa.string())) is None


def _numbered_by_regex(arr: pa.Array, prefix: str) -> tuple[list[int], list[int]]:
    """What numbered_keys computes, the slow way: regex, slice, cast."""
    rows = [
        i
        for i, v in enumerate(arr.to_pylist())
        if pc.match_substring_regex(pa.array([v]), f"^{prefix}[0-9]{{1,17}}$")[0].as_py()
    ]
    keys = [int(arr[r].as_py()[len(prefix) :]) | (len(arr[r].as_py()) - len(prefix)) << 57 | 1 << 63 for r in rows]
    return rows, keys


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 10**10 - 1).map(lambda i: f"O-{i:010d}"),
            st.text(alphabet="O-0123456789x٣é", min_size=12, max_size=12),
            st.text(alphabet="O-0123456789", min_size=3, max_size=14),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_numbered_keys_from_the_bytes_equal_the_regex_way(values):
    arr = pa.array(values, pa.string())
    rows, keys = numbered_keys(arr, "O-")
    want_rows, want_keys = _numbered_by_regex(arr, "O-")
    assert rows.tolist() == want_rows
    assert keys.tolist() == want_keys


def test_numbered_keys_take_the_byte_path_for_one_width(monkeypatch):
    def no_regex(*_args, **_kwargs):
        raise AssertionError("the byte path needs no regex")

    monkeypatch.setattr(pc, "match_substring_regex", no_regex)
    arr = pa.array([f"O-{i:010d}" for i in range(5)] + ["O-00000000x1"])
    rows, keys = numbered_keys(arr, "O-")
    assert rows.tolist() == [0, 1, 2, 3, 4]
    assert np.diff(keys).tolist() == [1, 1, 1, 1]


def test_rows_of_width_picks_the_commonest_width_and_skips_nulls():
    arr = pa.array(["zz", "abc", None, "de", "fgh", "ijk", ""]).slice(1)
    rows, matrix = rows_of_width(arr)
    assert rows.tolist() == [0, 3, 4]
    assert [bytes(r) for r in matrix] == [b"abc", b"fgh", b"ijk"]
    rows, matrix = rows_of_width(arr, 2)
    assert rows.tolist() == [2] and bytes(matrix[0]) == b"de"
    assert rows_of_width(pa.array(["", None])) is None
    assert rows_of_width(pa.array([1, 2])) is None
