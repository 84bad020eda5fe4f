"""fhircare.clock: one clock, moved by an offset or frozen for a block."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fhircare import clock


def test_the_clock_offset_and_frozen_clocks():
    assert clock.parse_offset("+400d") == timedelta(days=400)
    assert clock.parse_offset("-3h") == timedelta(hours=-3)
    assert clock.parse_offset("10y") == timedelta(days=3650)
    assert clock.parse_offset("90") == timedelta(seconds=90)
    with pytest.raises(ValueError, match="clock offset"):
        clock.parse_offset("next tuesday")
    moment = datetime(2040, 1, 2, 3, 4, tzinfo=UTC)
    with clock.frozen(moment):
        assert clock.now() == moment and clock.today() == date(2040, 1, 2)
    assert clock.now() != moment
    with clock.shifted("+10y") as delta:
        assert delta == timedelta(days=3650)
        assert abs((clock.now() - datetime.now(UTC)) - delta) < timedelta(minutes=1)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)
    with pytest.raises(ValueError, match="aware"), clock.frozen(datetime(2040, 1, 1)):  # noqa: DTZ001
        pass
