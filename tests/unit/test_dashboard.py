"""docs/grafana/shop.json: a Grafana dashboard whose every query names metrics the services
expose (no Grafana runs here: its shape is checked)."""

import json
import re
from collections.abc import Iterable

import yaml
from prometheus_client.core import Metric

from common import collector
from common.metrics import ServiceMetrics
from common.runtime import _CONSUMER_COUNTERS
from gateway_svc.middleware import Metrics
from stack.contracts import ROOT
from stack.services import SERVICES

DASHBOARD = json.loads((ROOT / "docs" / "grafana" / "shop.json").read_text())
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",), "gauge": ("",)}


def sample_names(families: Iterable[Metric]) -> set[str]:
    return {f"{f.name}{suffix}" for f in families for suffix in SUFFIXES.get(f.type, ("",))}


def exposed() -> set[str]:
    metrics = ServiceMetrics("any_svc")
    Metrics(metrics.registry)
    names = sample_names(metrics.registry.collect())
    kept = [*_CONSUMER_COUNTERS, "consumer_offset_commits_total", "outbox_published_total"]
    return names | {f"shop_{name}" for name in [*kept, *collector.counters(), *collector.gauges()]}


def test_the_dashboard_has_the_shape_grafana_imports() -> None:
    assert DASHBOARD["title"] and DASHBOARD["uid"]
    assert isinstance(DASHBOARD["schemaVersion"], int)
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in DASHBOARD["panels"]:
        assert panel["type"] in {"timeseries", "stat", "gauge", "table"}, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"], panel["title"]


def test_every_query_names_metrics_the_services_expose() -> None:
    names = exposed()
    used = {
        name
        for panel in DASHBOARD["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:shop|process)_[a-z_]+)\b", target["expr"])
    }
    assert used, "no metric in the dashboard"
    assert used <= names, used - names


def test_the_dashboard_plots_the_histograms_and_gauges_of_the_issue() -> None:
    text = json.dumps(DASHBOARD)
    for metric in (
        "shop_http_request_duration_seconds_bucket",
        "shop_consumer_batch_seconds_bucket",
        "shop_consumer_batch_records_sum",
        "shop_outbox_publish_seconds_bucket",
        "shop_consumer_hop_seconds_bucket",
        "shop_consumer_lag",
        "shop_outbox_rows",
        "shop_outbox_oldest_seconds",
        "shop_inbox_rows",
        "shop_dead_letters_total",
    ):
        assert metric in text, metric


def test_the_scrape_config_names_every_process_at_its_port() -> None:
    config = yaml.safe_load((ROOT / "docs" / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert jobs == {s.name: f"127.0.0.1:{s.base_port}" for s in SERVICES}
