"""Reading a Prometheus scrape in tests: every sample by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset], float]


def parse(body: bytes | str) -> Samples:
    """Every sample of an exposition text (fails on invalid text)."""
    text = body.decode() if isinstance(body, bytes) else body
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}


def of(samples: Samples, name: str) -> dict[frozenset, float]:
    """The samples named ``name``, by their labels."""
    return {labels: value for (sample_name, labels), value in samples.items() if sample_name == name}


def labels(**values: str) -> frozenset:
    return frozenset(values.items())


def label_values(samples: Samples) -> set[str]:
    """Every label value in a scrape but the histogram bounds."""
    return {value for (_, sample_labels) in samples for name, value in sample_labels if name != "le"}
