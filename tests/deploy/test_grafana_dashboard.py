"""deploy/grafana/railproxy.json: a valid dashboard whose queries use the metric names
proxy.observe.metrics exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from deploy_files import DEPLOY

from proxy.observe.metrics import Metrics

DASHBOARD: dict[str, Any] = json.loads((DEPLOY / "grafana" / "railproxy.json").read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
EXPRS = [t["expr"] for p in PANELS for t in p["targets"]]
REQUIRED = [
    "railproxy_requests_total",
    "railproxy_time_to_first_token_seconds_bucket",
    "railproxy_upstream_time_to_first_token_seconds_bucket",
    "railproxy_added_time_to_first_token_seconds_bucket",
    "railproxy_rail_duration_seconds_bucket",
    "railproxy_rail_verdicts_total",
    "railproxy_streams_blocked_total",
    "railproxy_active_streams",
    "railproxy_upstream_errors_total",
    "railproxy_client_disconnects_total",
    "railproxy_tokens_total",
    "railproxy_usage_tokens_total",
    "railproxy_inter_token_seconds_bucket",
    "railproxy_config_reloads_total",
]
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}


def exported_series() -> set[str]:
    """Every series name proxy.observe.metrics can expose."""
    names = set()
    for family in Metrics().registry.collect():
        names |= {family.name + s for s in SUFFIXES.get(family.type, [""])}
    return names


def test_it_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    assert DASHBOARD["schemaVersion"] >= 39
    assert DASHBOARD["uid"] == "railproxy"
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


@pytest.mark.parametrize("metric", REQUIRED)
def test_every_required_metric_is_charted(metric: str) -> None:
    assert any(re.search(rf"\b{metric}\b", e) for e in EXPRS)


def test_queries_only_use_series_railproxy_exports() -> None:
    used = {name for e in EXPRS for name in re.findall(r"\brailproxy_\w+", e)}
    assert used <= exported_series()


def test_quantiles_are_taken_over_buckets_by_le() -> None:
    quantiles = [e for e in EXPRS if "histogram_quantile" in e]
    assert len(quantiles) >= 9
    for e in quantiles:
        assert re.match(r"histogram_quantile\(0\.\d+, sum by \(le[,)]", e), e
        assert "_bucket{" in e


def test_queries_are_balanced_and_filter_by_namespace() -> None:
    for e in EXPRS:
        assert e.count("(") == e.count(")"), e
        assert e.count("{") == e.count("}"), e
        assert 'namespace=~"$namespace"' in e, e


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in DASHBOARD["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, p["title"]
        cells |= mine


def test_verdict_sums_keep_monitor_apart_from_enforce() -> None:
    """Summing railproxy_rail_verdicts_total without its mode label would add monitor-mode
    would-be blocks to real ones: every sum over it keeps ``mode`` or filters on it."""
    verdict_exprs = [e for e in EXPRS if "railproxy_rail_verdicts_total" in e]
    assert verdict_exprs
    for e in verdict_exprs:
        for labels in re.findall(r"sum by \(([^)]*)\)", e):
            assert "mode" in labels.split(", ") or 'mode="monitor"' in e, e


def test_a_panel_shows_what_monitor_mode_rails_would_block() -> None:
    [panel] = [p for p in PANELS if p["title"].startswith("Monitor mode")]
    exprs = [t["expr"] for t in panel["targets"]]
    assert any('verdict="block"' in e for e in exprs)
    for e in exprs:
        assert e.count('mode="monitor"') == 2, e  # would-act verdicts / all monitor verdicts
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
