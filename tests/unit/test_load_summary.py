"""The load report's arithmetic, on hand-made samples."""

from __future__ import annotations

from concertops.simulate.load import Recorder, percentile, summarise


def test_percentiles_pick_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 51.0 or percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


def test_sell_out_409s_are_not_business_errors_but_5xx_and_transport_failures_are() -> None:
    rec = Recorder()
    for _ in range(50):
        rec.record(409, 10.0)
    for _ in range(45):
        rec.record(201, 20.0)
    rec.record(500, 30.0)
    rec.record(503, 30.0)
    rec.record(0, 5000.0)  # connection refused
    rec.record(400, 5.0)
    rec.record(200, 5.0)
    result = summarise("reservation-stress", 50, 10.0, 1, rec)
    assert result.requests == 100
    assert result.throughput_rps == 10.0
    assert result.conflicts_409 == 50
    assert result.business_errors == 3
    assert result.business_error_rate == 0.03
    assert result.http_req_failed_rate == 0.54  # the naive k6 view: 409s + 400 + 5xx + transport
    assert result.statuses["transport_error"] == 1
