"""Reading a Prometheus text exposition, as a scraper would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_value(metrics_text: str, name: str, labels: dict[str, str]) -> float:
    """The value of the first sample `name` whose labels include `labels`; 0 when there is none."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return sample.value
    return 0.0
