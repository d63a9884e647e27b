"""The PromQL tokenizer the monitoring test relies on: it finds metric names and nothing else."""

from __future__ import annotations

import pytest

from tests.deploy.promql import family_of, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job=~"guard|budget", app_kubernetes_io_part_of="maestro"} == 0', {"up"}),
        (
            "histogram_quantile(0.99, sum by (le, role) (rate(task_seconds_bucket[$__rate_interval])))",
            {"task_seconds_bucket"},
        ),
        ("max(maestro_dlq_messages) - max(maestro_dlq_messages offset 15m) > 0", {"maestro_dlq_messages"}),
        (
            "max by (stream, consumer) (deriv(maestro_consumer_pending_messages[10m])) > 0\n"
            "and max by (stream, consumer) (maestro_consumer_pending_messages) > 100",
            {"maestro_consumer_pending_messages"},
        ),
        (
            'max by (tenant) (a_spent{tenant=~"$tenant"}) / max by(tenant)(a_limit) >= 0.8 < 1 and b > 1e6',
            {"a_spent", "a_limit", "b"},
        ),
        (
            "time() - max(maestro_backlog_read_timestamp_seconds) > 120",
            {"maestro_backlog_read_timestamp_seconds"},
        ),
        ("sum without (pod) (rate(x_total[5m:30s])) / on (job) group_left (tenant) y", {"x_total", "y"}),
        ('count_values("value", build_info) or vector(0) unless on() z', {"build_info", "z"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") > bool 0.5', {"m"}),
        ("topk(5, k:recorded:rate5m) + Inf", {"k:recorded:rate5m"}),
    ],
)
def test_finds_the_metric_names_and_nothing_else(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_histogram_s_series_belong_to_its_family() -> None:
    assert [family_of(n) for n in ("h_bucket", "h_sum", "h_count", "c_total", "g")] == [
        "h",
        "h",
        "h",
        "c_total",
        "g",
    ]
