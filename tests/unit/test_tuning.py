"""Cost arithmetic of ``sluice tune``: vCPU shares, billed duration, GB-seconds, dollars, the peers."""

import json

import pytest

from sluice import prices
from sluice.tuning import (
    GIB,
    SFN_TRANSITIONS_PER_FILE,
    Measurement,
    billed_seconds,
    firehose_cost,
    gb_seconds,
    glue_job_cost,
    json_ratio,
    lambda_cost,
    per_gib,
    pinned_cpus,
    pipeline_overhead_per_file,
    vcpu_share,
)
from tests.unit.conftest import REPO


def test_vcpu_share_and_pinning_follow_the_engine_rule():
    assert vcpu_share(1769) == 1.0
    assert vcpu_share(3538) == 2.0
    assert pinned_cpus(1769, 2) == 1
    assert pinned_cpus(3538, 2) == 2
    assert pinned_cpus(10240, 2) == 2  # more than the machine has: capped
    assert pinned_cpus(10240, 8) == 6  # 5.79 vCPUs: the engine rounds
    assert pinned_cpus(512, 2) == 1  # a fraction still runs on one CPU


def test_duration_is_billed_per_millisecond():
    assert billed_seconds(1.0) == 1.0
    assert billed_seconds(1.0001) == 1.001
    assert billed_seconds(0.0004) == 0.001
    assert billed_seconds(2.5) == 2.5  # no float noise turns an exact ms into the next one


def test_gb_seconds_and_lambda_cost():
    assert gb_seconds(1024, 2.0) == 2.0
    assert gb_seconds(1769, 1.0) == pytest.approx(1.7275, abs=1e-4)
    assert lambda_cost(1024, 2.0) == pytest.approx(2 * 0.0000166667 + 0.0000002)
    assert lambda_cost(1024, 2.0, "arm64") == pytest.approx(2 * 0.0000133334 + 0.0000002)
    assert lambda_cost(1024, 2.0, "arm64") < lambda_cost(1024, 2.0, "x86_64")


def test_per_gib_scales_to_one_gib():
    assert per_gib(0.5, GIB // 2) == 1.0
    assert per_gib(1.0, 100 << 20) == pytest.approx(10.24)


def test_measurement_row():
    m = Measurement(
        memory_mb=1769,
        cpus=1,
        threads=1,
        seconds=1.0,
        init_seconds=0.3,
        peak_rss_bytes=300 << 20,
        input_bytes=100 << 20,
        rows_in=800_000,
    )
    row = m.to_row()
    assert row["gb_seconds"] == pytest.approx(1.7275, abs=1e-4)
    assert row["mib_per_second"] == 100.0
    assert row["cpu_matched"] and row["fits_memory"]
    expected = 1.7275390625 * prices.LAMBDA_GB_SECOND["x86_64"] + prices.LAMBDA_REQUEST
    assert row["usd_per_1000_files"]["x86_64"] == pytest.approx(1000 * expected)
    assert row["usd_per_gib"]["x86_64"] == pytest.approx(expected * 10.24)
    json.dumps(row)
    wide = Measurement(10240, 2, 2, 1.0, 0.3, 300 << 20, 100 << 20, 1)
    assert not wide.to_row()["cpu_matched"]
    small = Measurement(256, 1, 1, 1.0, 0.3, 300 << 20, 100 << 20, 1)
    assert not small.to_row()["fits_memory"]


def test_glue_bills_two_dpus_for_at_least_a_minute():
    floor = 2 * 60 / 3600 * 0.44
    assert glue_job_cost(1 << 20, bytes_per_vcpu_second=100 << 20) == pytest.approx(floor)
    # 80 GiB at 10 MiB/s per vCPU on 8 vCPUs = 1,024 s
    assert glue_job_cost(80 * GIB, bytes_per_vcpu_second=10 << 20) == pytest.approx(2 * 1024 / 3600 * 0.44)


def test_firehose_bills_ingestion_and_conversion_in_5kb_steps():
    per_gb = 0.029 + 0.018
    assert firehose_cost(GIB) == pytest.approx(per_gb, rel=1e-3)  # packed records: the rounding is noise
    assert firehose_cost(1) == pytest.approx(5 * 1024 / GIB * per_gb)  # one tiny record bills 5 KB
    assert firehose_cost(1000, record_bytes=100) == pytest.approx(10 * 5 * 1024 / GIB * per_gb)


def test_json_ratio_counts_keys_per_row():
    sample = "a,b\n1,2\n3,4\npartial"
    # {"a": "1", "b": "2"} + newline = 21 bytes per row, against "1,2\n" = 4 bytes
    assert json_ratio(sample) == pytest.approx(2 * 21 / 8)
    assert json_ratio("") == 1.0


def test_transitions_per_file_walk_the_single_worker_path():
    asl = json.loads((REPO / "statemachines/pipeline.asl.json").read_text())
    states, name, path = asl["States"], asl["StartAt"], []
    while name:
        path.append(name)
        state = states[name]
        name = state.get("Default") if state["Type"] == "Choice" else state.get("Next")
    assert path[-1] == "Done" and "Transform" in path
    assert len(path) == SFN_TRANSITIONS_PER_FILE


def test_pipeline_overhead_is_mostly_state_transitions():
    overhead = pipeline_overhead_per_file()
    assert SFN_TRANSITIONS_PER_FILE * prices.SFN_STATE_TRANSITION < overhead < 0.001
