"""The clocks: virtual time moves only when something sleeps on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callagent.clock import VIRTUAL_EPOCH, SystemClock, VirtualClock


class TestVirtualClock:
    def test_sleep_advances_time_without_waiting(self) -> None:
        """Two virtual hours pass at once and show in both time readings."""
        clock = VirtualClock()
        clock.sleep(7200)
        assert clock.monotonic() == 7200
        assert clock.now() == VIRTUAL_EPOCH + timedelta(hours=2)

    def test_non_positive_sleep_is_a_no_op(self) -> None:
        """Sleeping zero or negative seconds leaves time where it was."""
        clock = VirtualClock()
        clock.sleep(0)
        clock.sleep(-3)
        assert clock.monotonic() == 0

    def test_paced_clock_sleeps_a_fraction_on_the_real_clock(self) -> None:
        """With pace 10, ten virtual seconds cost one second of the real clock."""
        real = VirtualClock()
        clock = VirtualClock(pace=10, real=real)
        clock.sleep(10)
        assert real.monotonic() == pytest.approx(1.0)
        assert clock.monotonic() == 10

    def test_naive_start_is_refused(self) -> None:
        """A start without a timezone would write ambiguous timestamps."""
        with pytest.raises(ValueError, match="timezone-aware"):
            VirtualClock(datetime(2026, 1, 1))

    def test_advance_refuses_to_go_backwards(self) -> None:
        """Time never runs backwards."""
        with pytest.raises(ValueError, match="backwards"):
            VirtualClock().advance(-1)


def test_system_clock_reads_utc() -> None:
    """The system clock's timestamps are timezone-aware UTC."""
    assert SystemClock().now().tzinfo is UTC
