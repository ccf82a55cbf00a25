"""Drift monitoring's cost timed alone: a child process times the bundled classifier's finish and watch."""

from __future__ import annotations

from conftest import REPO_ROOT

from benchmarks import monitoring_cost

CLASSIFIER = REPO_ROOT / "models" / "shapes-classifier" / "1" / "model.onnx"


def test_the_bundled_classifier_s_finish_and_watch_are_each_timed() -> None:
    timed = monitoring_cost.measure({"classify": CLASSIFIER})
    assert list(timed) == ["classify"]
    cost = timed["classify"]
    assert cost["finish_us"] > 0
    assert cost["watch_us"] > 0
    assert cost["blocks"] == monitoring_cost.BLOCKS
    assert cost["images_per_block"] % 9 == 0  # whole passes over the bench's nine photos


def test_timings_after_several_rounds_become_one_by_their_medians() -> None:
    rounds = [
        {"classify": {"finish_us": finish, "watch_us": watch, "blocks": 11, "images_per_block": 900}}
        for finish, watch in [(10.0, 30.0), (12.0, 16.0), (30.0, 17.0)]
    ]
    assert monitoring_cost.medians(rounds) == {
        "classify": {"finish_us": 12.0, "watch_us": 17.0, "blocks": 11, "runs": 3}
    }
