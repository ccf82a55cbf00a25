"""Every hand-off the bench times really carries the image to another process and its answer back."""

from __future__ import annotations

import pytest

from benchmarks import handoff


@pytest.mark.parametrize("method", list(handoff.METHODS))
def test_each_hand_off_round_trips_the_image_it_was_given(method: str) -> None:
    # measure() raises unless the runner's last answer holds the ends of the image that was sent.
    assert handoff.measure(method, (8, 8, 3), trips=5) > 0
