"""The Grafana dashboard and the Prometheus alert rules, checked against the metric catalogue deploy/metrics.yml.

Every PromQL expression is parsed and type-checked by promql-parser (a port of Prometheus' own parser); a metric
or label that the catalogue does not list fails here, so renaming a metric without updating the dashboards and
alerts breaks the build. ``promtool check rules`` and ``promtool test rules deploy/prometheus/alerts_test.yml``
check the same files with Prometheus itself where promtool is installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml

from neotool_common.observability.metrics import METRIC_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CATALOGUE: dict[str, dict[str, Any]] = yaml.safe_load((DEPLOY / "metrics.yml").read_text())["metrics"]
DASHBOARD: dict[str, Any] = json.loads((DEPLOY / "grafana" / "neotool-consumer.json").read_text())
ALERTS: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
ALERT_TESTS: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())

# Prometheus adds these to every scraped series.
SCRAPE_LABELS = frozenset({"instance", "job"})
# Grafana replaces these before the query reaches Prometheus; any duration makes the expression parse the same.
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
RUNBOOK = "docs/institution-enhancement/runbook.md"
ALERT_NAMES = {
    "NeotoolConsumerDeadLettering",
    "NeotoolConsumerLagGrowing",
    "NeotoolConsumerNotReady",
    "NeotoolConsumerCircuitOpen",
    "NeotoolConsumerCommitFailures",
    "NeotoolConsumerDeadLetterWritesFailing",
    "NeotoolConsumerRetryTierWritesFailing",
    "NeotoolConsumerPartitionStuck",
    "NeotoolConsumerBatchOverdue",
    "NeotoolConsumerRetriesLate",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# --- reading PromQL -------------------------------------------------------------------------------------------


def parse(expr: str) -> promql.Expr:
    for macro, duration in GRAFANA_MACROS.items():
        expr = expr.replace(macro, duration)
    assert "$__" not in expr, f"unknown Grafana macro in {expr}"
    return promql.parse(expr)


def nodes(expr: promql.Expr) -> list[Any]:
    found: list[Any] = []
    promql.walk(expr, found.append)
    return found


def selectors(expr: promql.Expr) -> list[promql.VectorSelector]:
    return [node for node in nodes(expr) if isinstance(node, promql.VectorSelector)]


def catalogue_entry(series: str) -> tuple[str, dict[str, Any], set[str]]:
    """The catalogue name, entry and labels of an exposed series name (histograms expose three series)."""
    if series in CATALOGUE:
        entry = CATALOGUE[series]
        return series, entry, set(entry["labels"]) | SCRAPE_LABELS
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and CATALOGUE.get(base, {}).get("type") == "histogram":
            le = {"le"} if suffix == "_bucket" else set()
            return base, CATALOGUE[base], set(CATALOGUE[base]["labels"]) | SCRAPE_LABELS | le
    raise AssertionError(f"{series} is not in deploy/metrics.yml")


def series_labels(expr: promql.Expr) -> set[str]:
    return set().union(*(catalogue_entry(s.name)[2] for s in selectors(expr)))


def operand(node: Any) -> Any:
    """The sub-expression whose labels a wrapping expression passes on."""
    if isinstance(node, promql.MatrixSelector):
        return node.vector_selector
    if isinstance(node, promql.ParenExpr):
        return node.expr
    if isinstance(node, promql.BinaryExpr):
        return node.rhs if isinstance(node.lhs, promql.NumberLiteral) else node.lhs
    if isinstance(node, promql.Call):
        return next(arg for arg in node.args if not isinstance(arg, promql.NumberLiteral | promql.StringLiteral))
    raise AssertionError(f"no labels pass through {node}")


def output_labels(node: Any) -> set[str]:
    """The labels an expression's result carries (what an alert's annotations can print)."""
    if isinstance(node, promql.VectorSelector):
        return catalogue_entry(node.name)[2]
    if isinstance(node, promql.AggregateExpr):
        named = set(node.modifier.labels) if node.modifier is not None else set()
        by = node.modifier is None or node.modifier.type == promql.AggModifierType.By
        return named if by else output_labels(node.expr) - named
    labels = output_labels(operand(node))
    return labels - {"le"} if isinstance(node, promql.Call) and node.func.name == "histogram_quantile" else labels


def quantiles(expr: promql.Expr) -> Iterator[tuple[float, str]]:
    for node in nodes(expr):
        if isinstance(node, promql.Call) and node.func.name == "histogram_quantile":
            (inner,) = {catalogue_entry(s.name)[0] for s in selectors(node.args[1])}
            yield float(node.args[0].val), inner


def aggregated_by(expr: promql.Expr) -> Iterator[tuple[set[str], set[str]]]:
    """(labels of each ``by`` clause, series aggregated by it)."""
    for node in nodes(expr):
        if (
            isinstance(node, promql.AggregateExpr)
            and node.modifier is not None
            and node.modifier.type == promql.AggModifierType.By
        ):
            yield set(node.modifier.labels), {s.name for s in selectors(node.expr)}


# --- the dashboard's and the alerts' expressions ----------------------------------------------------------------


def panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def named_exprs() -> list[Any]:
    """Every expression of the dashboard and the alerts, named after its panel or alert."""
    on_panels = [
        pytest.param(target["expr"], id=f"{panel['title']}/{target['refId']}")
        for panel in panels()
        for target in panel["targets"]
    ]
    return [*on_panels, *(pytest.param(rule["expr"], id=rule["alert"]) for rule in rules())]


def variable(name: str) -> dict[str, Any]:
    (found,) = [v for v in DASHBOARD["templating"]["list"] if v["name"] == name]
    return found


def variable_selector(name: str) -> tuple[promql.Expr, str]:
    """The selector and label of a ``label_values(<selector>, <label>)`` variable query."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable(name)["query"]["query"])
    assert match is not None
    return parse(match.group(1)), match.group(2)


def rules() -> list[dict[str, Any]]:
    return [rule for group in ALERTS["groups"] for rule in group["rules"]]


# --- the catalogue ------------------------------------------------------------------------------------------------


def test_the_catalogue_is_what_the_runner_exports_by_name() -> None:
    assert set(CATALOGUE) == METRIC_NAMES


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_names_follow_prometheus_conventions(name: str) -> None:
    entry = CATALOGUE[name]
    assert name.startswith("neotool_consumer_")
    assert entry["type"] in {"counter", "gauge", "histogram"}
    assert name.endswith("_total") == (entry["type"] == "counter")
    if entry["type"] == "histogram":
        assert name.endswith("_seconds")
    assert "group" in entry["labels"]


# --- the dashboard ------------------------------------------------------------------------------------------------


def test_dashboard_is_importable() -> None:
    assert DASHBOARD["id"] is None  # Grafana assigns one on import
    assert DASHBOARD["uid"] == "neotool-consumer"
    assert isinstance(DASHBOARD["schemaVersion"], int)
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


def test_datasource_is_a_template_variable() -> None:
    datasource = variable("datasource")
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    chosen = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        assert panel["datasource"] == chosen, panel["title"]
        assert all(target["datasource"] == chosen for target in panel["targets"]), panel["title"]
    for name in ("group", "topic"):
        assert variable(name)["datasource"] == chosen


@pytest.mark.parametrize("name", ["group", "topic"])
def test_group_and_topic_variables_read_real_labels(name: str) -> None:
    selector, label = variable_selector(name)
    assert label == name
    assert label in series_labels(selector)
    assert variable(name)["includeAll"]
    assert variable(name)["allValue"] == ".*"


def test_every_panel_has_a_title_and_queries() -> None:
    for panel in panels():
        assert panel["title"]
        assert panel["description"]
        assert panel["targets"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_the_dashboard_shows_every_catalogued_metric() -> None:
    shown = {catalogue_entry(s.name)[0] for expr in dashboard_exprs() for s in selectors(parse(expr))}
    assert shown == set(CATALOGUE)


@pytest.mark.parametrize(
    "histogram",
    [
        "neotool_consumer_ack_latency_seconds",
        "neotool_consumer_processing_seconds",
        "neotool_consumer_end_to_end_age_seconds",
        "neotool_consumer_retry_lateness_seconds",
    ],
)
def test_histograms_are_shown_as_p50_and_p99(histogram: str) -> None:
    shown = {q for expr in dashboard_exprs() for q, name in quantiles(parse(expr)) if name == histogram}
    assert shown == {0.5, 0.99}


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        ("neotool_consumer_dlq_messages_total", "reason"),
        ("neotool_consumer_lag_records", "partition"),
        ("neotool_consumer_partition_stalled_seconds", "partition"),
        ("neotool_consumer_partition_paused", "reason"),
        ("neotool_consumer_rebalances_total", "kind"),
        ("neotool_consumer_messages_processed_total", "topic"),
    ],
)
def test_breakdowns(metric: str, label: str) -> None:
    breakdowns = [
        by
        for expr in dashboard_exprs()
        for by, series in aggregated_by(parse(expr))
        if metric in {catalogue_entry(name)[0] for name in series}
    ]
    assert any(label in by for by in breakdowns)


def test_panels_follow_the_group_and_topic_variables() -> None:
    for expr in dashboard_exprs():
        for selector in selectors(parse(expr)):
            matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
            assert ("group", "MatchOp.Re", "$group") in matchers, expr
            if "topic" in catalogue_entry(selector.name)[1]["labels"]:
                assert ("topic", "MatchOp.Re", "$topic") in matchers, expr


# --- both ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expr", named_exprs())
def test_expressions_use_only_catalogued_metrics_and_labels(expr: str) -> None:
    parsed = parse(expr)
    for selector in selectors(parsed):
        labels = catalogue_entry(selector.name)[2]
        assert {m.name for m in selector.matchers.matchers} <= labels, expr
    for by, series in aggregated_by(parsed):
        assert by <= set().union(*(catalogue_entry(name)[2] for name in series)), expr


@pytest.mark.parametrize("expr", named_exprs())
def test_rates_are_taken_of_counters_only(expr: str) -> None:
    for node in nodes(parse(expr)):
        if isinstance(node, promql.Call) and node.func.name in {"rate", "irate", "increase"}:
            series = node.args[0].vector_selector.name
            assert series.endswith("_total") or series.endswith(HISTOGRAM_SUFFIXES), expr
            assert catalogue_entry(series)[1]["type"] in {"counter", "histogram"}, expr


def test_a_rename_is_caught() -> None:
    with pytest.raises(AssertionError, match=r"not in deploy/metrics\.yml"):
        test_expressions_use_only_catalogued_metrics_and_labels("rate(neotool_consumer_processed_total[5m])")
    with pytest.raises(AssertionError):
        test_expressions_use_only_catalogued_metrics_and_labels('neotool_consumer_ready{topic="t"}')


# --- the alerts -----------------------------------------------------------------------------------------------------


def test_the_expected_alerts_exist() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) == ALERT_NAMES


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_alert_rules_are_complete(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
    promql.parse_duration(rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == f"{RUNBOOK}#{rule['alert'].lower()}"


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_annotations_print_only_labels_the_alert_has(rule: dict[str, Any]) -> None:
    available = output_labels(parse(rule["expr"]))
    text = rule["annotations"]["summary"] + rule["annotations"]["description"]
    printed = set(re.findall(r"\$labels\.(\w+)", text))
    assert printed
    assert printed <= available


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    assert ALERT_TESTS["rule_files"] == ["alerts.yml"]
    cases = [case for test in ALERT_TESTS["tests"] for case in test["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == ALERT_NAMES
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == ALERT_NAMES
