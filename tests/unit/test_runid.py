from hypothesis import given
from hypothesis import strategies as st

from sluice.runid import MAX_NAME, run_id_for

SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_same_content_same_name_new_content_new_name():
    a = {"bucket": "raw", "key": "orders/a.csv", "etag": '"abc"', "version_id": "v1"}
    assert run_id_for("orders", a) == run_id_for("orders", {**a, "version_id": "v2"})
    assert run_id_for("orders", a) != run_id_for("orders", {**a, "etag": "abd"})
    assert run_id_for("orders", a) != run_id_for("orders", a, with_version=True)


def test_version_is_the_identity_without_etag():
    a = {"bucket": "raw", "key": "orders/a.csv", "version_id": "v1"}
    assert run_id_for("orders", a) != run_id_for("orders", {**a, "version_id": "v2"})


@given(key=st.text(min_size=1, max_size=300), dataset=st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True))
def test_names_fit_step_functions_rules(key, dataset):
    name = run_id_for(dataset, {"bucket": "raw", "key": key, "etag": "e"})
    assert 0 < len(name) <= MAX_NAME
    assert set(name) <= SAFE
