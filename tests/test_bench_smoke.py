"""Smoke runs of every benchmark with tiny sizes, so that none of them rots.

They check the shape and sanity of each result, never the goals: those are
for full runs on a quiet machine (see README, Benchmarks).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))

import api_economy
import archive_import
import import_throughput
import memory
import webhook_intake
from directus_strava.archive import read_archive


@pytest.mark.directus
def test_import_throughput_measures_ours_and_the_baseline(directus: Any) -> None:
    result = import_throughput.run(4, directus)
    assert result.activities == 4
    assert result.ours_s > 0
    assert result.baseline_s > 0
    assert 0 < result.ratio < 10
    assert result.requests_per_activity == pytest.approx(2.0)
    assert 0 < result.derive_ms <= result.cpu_ms
    assert result.gpx_kb > 10
    assert "ratio" in import_throughput.report([result])


@pytest.mark.directus
def test_api_economy_counts_reads_and_simulated_time(directus_sqlite: Any) -> None:
    result = api_economy.run(12, events=2, instance=directus_sqlite)
    assert result.summary_reads == 2  # one page and the empty one after it
    assert result.full_reads == 2 * 12 + 2
    assert result.webhook_per_activity == 2
    assert result.rejected == 0
    assert result.minimum_s >= 0
    assert result.duration_s >= result.minimum_s
    assert "429 responses" in api_economy.report(result)


def test_earliest_finish_walks_quarters_and_days() -> None:
    start = api_economy.START  # 10:00 UTC
    assert api_economy.earliest_finish(start, 100, 100, 1000) == start
    assert api_economy.earliest_finish(start, 101, 100, 1000) == start + 900
    midnight = (start // 86400 + 1) * 86400
    assert api_economy.earliest_finish(start, 1001, 100, 1000) == midnight


@pytest.mark.directus
def test_webhook_intake_acknowledges_and_imports_a_burst(directus_sqlite: Any) -> None:
    (result,) = webhook_intake.run((3,), directus_sqlite)
    assert result.events == 3
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.retried == 0
    assert result.in_directus_s >= result.sent_s > 0


@pytest.mark.directus
def test_memory_measures_each_case_in_its_own_process(directus_sqlite: Any) -> None:
    cases = memory.run((3,), directus_sqlite)
    assert [c.name.split(",")[0] for c in cases] == [
        "day-long activity",
        "archive of 3 activities",
    ]
    assert all(0 < c.idle_mb <= c.peak_mb < 4096 for c in cases)


@pytest.mark.directus
def test_archive_import_times_parsing_and_importing(directus_sqlite: Any) -> None:
    result = archive_import.run(3, directus_sqlite)
    assert result.activities == 3
    assert result.problems == 0
    assert result.parse_s > 0
    assert result.import_s > 0
    assert result.cpu_ms > 0


def test_generated_archive_reads_back_in_every_format(tmp_path: Path) -> None:
    path = archive_import.make_archive(tmp_path / "export.zip", 3, points=50)
    found = list(read_archive(path))
    assert [a.problem for a in found] == [None, None, None]
    assert [len(a.streams["latlng"]) for a in found] == [326, 50, 50]
