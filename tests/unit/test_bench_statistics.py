"""The bench's statistics: medians, percentiles, rates and the RSS halves (pure)."""

from __future__ import annotations

import math

import pytest

from clickstream_devstack.bench.measure import median, percentile, rate, ratio, split_peaks


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_median_of_nothing_is_nan_not_an_error() -> None:
    assert math.isnan(median([]))


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)


def test_percentile_ignores_input_order_and_handles_one_value() -> None:
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], q)


def test_rate_and_ratio_never_divide_by_zero() -> None:
    assert rate(1000, 2.0) == 500.0
    assert math.isnan(rate(1000, 0.0))
    assert ratio(3.0, 4.0) == 0.75
    assert math.isnan(ratio(1.0, 0.0))


def test_split_peaks_by_time_not_by_sample_count() -> None:
    # Dense samples early, sparse late: the midpoint is in time (5.0), not the 3rd sample.
    series = [(0.0, 100.0), (1.0, 150.0), (2.0, 120.0), (3.0, 110.0), (10.0, 130.0)]
    assert split_peaks(series) == (150.0, 130.0)


def test_split_peaks_of_nothing() -> None:
    first, second = split_peaks([])
    assert math.isnan(first)
    assert math.isnan(second)
