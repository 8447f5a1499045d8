import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.pipeline.runid import MAX_NAME, InvalidRunIdError, checked, run_id_for

SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_every_upload_is_a_run_and_the_same_event_is_the_same_run():
    a = {"bucket": "raw", "key": "orders/a.csv", "etag": '"abc"', "version_id": "v1", "size": 3}
    assert run_id_for("orders", a) == run_id_for("orders", dict(a))
    # the same bytes uploaded again (e.g. after a failed run) are a new version: a new run
    assert run_id_for("orders", a) != run_id_for("orders", {**a, "version_id": "v2"})
    assert run_id_for("orders", a) != run_id_for("orders", {**a, "key": "orders/b.csv"})
    # a rerun of the same upload is a new attempt
    assert run_id_for("orders", a) != run_id_for("orders", a, attempt=2) != run_id_for("orders", a, attempt=3)
    assert run_id_for("orders", a, attempt=1) == run_id_for("orders", a)


def test_unversioned_uploads_are_told_apart_by_sequencer_then_etag():
    a = {"bucket": "raw", "key": "orders/a.csv", "etag": "e1", "version_id": "null", "sequencer": "0A"}
    assert run_id_for("orders", a) != run_id_for("orders", {**a, "sequencer": "0B"})
    plain = {"bucket": "raw", "key": "orders/a.csv", "etag": '"e1"'}
    assert run_id_for("orders", plain) == run_id_for("orders", {**plain, "etag": "e1"})
    assert run_id_for("orders", plain) != run_id_for("orders", {**plain, "etag": "e2"})


@given(key=st.text(min_size=1, max_size=300), dataset=st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True))
def test_names_fit_step_functions_rules(key, dataset):
    name = run_id_for(dataset, {"bucket": "raw", "key": key, "etag": "e"})
    assert 0 < len(name) <= MAX_NAME
    assert set(name) <= SAFE


@pytest.mark.parametrize("bad", ["../../etc", "run/1", "", "a" * 81, "run 1", None, "ré"])
def test_paths_and_keys_come_from_validated_run_ids_only(bad, tmp_path):
    """Fails if a payload's run id can reach a path or an S3 key unchecked (../ would escape /tmp/sluice)."""
    from sluice.pipeline import layout
    from sluice.pipeline.landing import land_run
    from tests.fakes import MemoryStore
    from tests.fanout_data import contract

    with pytest.raises(InvalidRunIdError):
        checked(bad)
    for name in (layout.manifest_key, layout.staging_prefix, layout.plan_key, layout.parts_prefix):
        with pytest.raises(InvalidRunIdError):
            name(bad)
    with pytest.raises(InvalidRunIdError):
        layout.work_dir(tmp_path, bad)
    run = {
        "run_id": bad,
        "dataset": "x",
        "contract_version": 1,
        "started_at": "t",
        "mode": "single",
        "source": {"bucket": "raw", "key": "fanout_orders/a.csv"},
    }
    store = MemoryStore()
    store.put("raw", "fanout_orders/a.csv", b"order_id\n")
    with pytest.raises(InvalidRunIdError):
        land_run(
            run,
            contract(),
            store,
            curated_bucket="c",
            quarantine_bucket="q",
            work_bucket="w",
            staging_root=tmp_path / "s",
        )
    assert not (tmp_path / "s").exists() and [b for b, _ in store.objects] == ["raw"]
    assert checked("orders-a-0123456789abcdef0123") == "orders-a-0123456789abcdef0123"
