"""Dashboards and alerts: the rules pass promtool and their unit tests, the metrics pass
`promtool check metrics`, and every dashboard panel and alert expression runs without error
(and, where the run made data, returns some) on a real Prometheus scraping a real mediad."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mediad.metrics import REGISTRY
from tests.support.media import Expected
from tests.support.processes import Daemon, counts, free_port, mediad, wait_until

SQL = Callable[..., list[tuple[Any, ...]]]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
DASHBOARD = DASHBOARDS / "mediad.json"
ALERTS = DASHBOARDS / "alerts.yml"
ALERTS_TEST = DASHBOARDS / "alerts_test.yml"
EXAMPLE_PROMETHEUS = DASHBOARDS / "provisioning" / "prometheus.yml"


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and os.access(f"/usr/bin/{name}", os.X_OK):
        found = f"/usr/bin/{name}"
    return found


PROMTOOL = _tool("promtool")
PROMETHEUS = _tool("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)"
)
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (Debian package `prometheus`)"
)

# Panel queries allowed to return nothing after the end-to-end run, and why. Keyed by
# (panel title, refId); every other panel query must return at least one finite value.
MAY_BE_EMPTY = {
    ("Database errors", "A"): "no database operation fails in the run",
    ("Config reloads by result", "A"): "no SIGHUP is sent in the run",
    ("Stalled mounts", "A"): "the run reports no mount (series exist per reported mount)",
    ("Files in flight by mount", "A"): "the run reports no mount",
}
# Series the run never creates: labelled counters that appear with their first increment.
SELECTORS_MAY_BE_EMPTY = {
    "mediad_db_errors_total": "no database operation fails in the run",
    "mediad_config_reloads_total": "no SIGHUP is sent in the run",
    "mediad_mount_stalled": "the run reports no mount",
    "mediad_mount_in_flight": "the run reports no mount",
}
# Grafana's variables, as a dashboard user would have them set.
GRAFANA_BUILTINS = ("$__rate_interval", "$__interval", "$__range")


# --- helpers ----------------------------------------------------------------------------


def run_tool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, input=stdin, cwd=ROOT
    )


def exported_names() -> set[str]:
    """Every sample name mediad's registry exposes (with prometheus-client's suffixes)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    return {f.name + suffix for f in REGISTRY.collect() for suffix in suffixes[f.type]}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target of every panel."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert:\s*(\w+)\s*$", ALERTS.read_text(), re.MULTILINE)


def metric_tokens(text: str) -> set[str]:
    return set(re.findall(r"\bmediad_[a-z0-9_]+\b", text))


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + name[1:] + "}", value).replace(name, value)
    assert "$" not in expr, f"a dashboard variable the test does not know: {expr}"
    return expr


def selectors(expr: str) -> set[str]:
    """The series selectors (name{matchers}) in a PromQL expression."""
    return set(re.findall(r"\b(?:mediad_[a-z0-9_]+|up)\{[^}]*\}", expr))


class PrometheusAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, say which
            body = json.load(exc)
        return body

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("/api/v1/query", query=expr)

    def vector(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False


def finite_values(answer: dict[str, Any]) -> list[float]:
    data = answer["data"]
    if data["resultType"] in ("scalar", "string"):
        return [float(data["result"][1])]
    values = [float(item["value"][1]) for item in data["result"]]
    return [v for v in values if math.isfinite(v)]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


def sample_sum(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


# --- static checks (fast) -----------------------------------------------------------------


@needs_promtool
def test_alert_rules_are_valid() -> None:
    result = run_tool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


@needs_promtool
def test_alert_rules_unit_tests_pass() -> None:
    result = run_tool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_example_prometheus_config_is_valid() -> None:
    result = run_tool("check", "config", str(EXAMPLE_PROMETHEUS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    tested: dict[str, set[str]] = {}
    lines = [line.strip() for line in ALERTS_TEST.read_text().splitlines() if line.strip()]
    for line, following in itertools.pairwise(lines):
        if match := re.fullmatch(r"alertname:\s*(\w+)", line):
            kind = "quiet" if following == "exp_alerts: []" else "firing"
            tested.setdefault(match.group(1), set()).add(kind)
    names = alert_names()
    assert len(names) == len(set(names)) >= 10
    missing = {n: {"quiet", "firing"} - tested.get(n, set()) for n in names}
    assert not {n: m for n, m in missing.items() if m}, missing
    assert set(tested) <= set(names), set(tested) - set(names)


def test_alerts_have_for_severity_and_annotations() -> None:
    blocks = re.split(r"^\s*- alert:", ALERTS.read_text(), flags=re.MULTILINE)[1:]
    assert len(blocks) == len(alert_names())
    for block in blocks:
        name = block.split()[0]
        assert re.search(r"^\s+severity: (critical|warning|info)\s*$", block, re.MULTILINE), name
        assert re.search(r"^\s+summary: ", block, re.MULTILINE), name
        assert re.search(r"^\s+description: ", block, re.MULTILINE), name
        # Only a reload failure alerts at once (a single event); the rest need a `for:`.
        if name != "MediadConfigReloadFailed":
            assert re.search(r"^\s+for: \d+[smh]\s*$", block, re.MULTILINE), name


def test_dashboard_is_provisionable_and_uses_datasource_everywhere() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "mediad" and dashboard["id"] is None
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query"
    assert instance["query"]["query"] == "label_values(mediad_build_info, instance)"
    assert instance["includeAll"] and instance["multi"]
    daemon = variables["daemon"]  # the fleet's per-daemon panels, by host[:instance]
    assert daemon["query"]["query"].startswith("label_values(mediad_fleet_daemon_up{")
    assert daemon["includeAll"] and daemon["multi"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}", variable["name"]

    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'instance=~"$instance"' in target["expr"], (panel["title"], target["expr"])

    titles = {p["title"] for p in panels(dashboard)}
    wanted = {
        "Throughput by outcome",
        "Failures by class",
        "Queue depth by state",
        "Oldest pending age",
        "Extraction time",
        "Claim and write-back latency (p99)",
        "Batch sizes",
        "Busy vs idle workers",
        "Worker restarts by reason",
        "Stale (fenced) completions",
        "Leases renewed, lost and rows reclaimed",
        "Released rows",
        "Database errors",
        "Config reloads by result",
        "Bytes read",
        "Build info",
        "Stalled mounts",
        "Files in flight by mount",
        "Stuck worker processes",
        "Daemons by state",
        "Files/s by daemon",
        "Files in flight by daemon",
        "Stuck workers by daemon",
        "Heartbeat age by daemon",
    }
    assert wanted <= titles, wanted - titles
    queries = {title: expr for title, _ref, expr in panel_queries(dashboard)}
    assert all(f"histogram_quantile({q}," in json.dumps(dashboard) for q in (0.5, 0.95, 0.99))
    assert "mediad_build_info" in queries["Build info"]
    for title in ("Files/s by daemon", "Files in flight by daemon", "Heartbeat age by daemon"):
        assert 'daemon=~"$daemon"' in queries[title], title
    assert set(MAY_BE_EMPTY) <= {(t, r) for t, r, _ in panel_queries(dashboard)}


def test_dashboard_and_alerts_use_only_metrics_mediad_exports() -> None:
    exported = exported_names()
    dashboard = json.loads(DASHBOARD.read_text())
    used = metric_tokens(" ".join(expr for _t, _r, expr in panel_queries(dashboard)))
    used |= metric_tokens(ALERTS.read_text())
    assert used, "no mediad metric found in the dashboard or the alerts"
    assert used <= exported, f"not exported by mediad: {sorted(used - exported)}"


# --- end to end: a real mediad, a real Prometheus ----------------------------------------


def feed(
    corpus: tuple[Path, dict[str, Expected]], target: Path, copies: int, hang: bool = False
) -> list[Path]:
    """The real corpus, `copies` hard links of its MP4, a text file named .mp4 (fails as
    `unsupported`) and, with `hang`, a file the test hook makes hang (fails as `timeout`)."""
    directory, expected = corpus
    target.mkdir()
    files = []
    for name in expected:
        os.link(directory / name, target / name)
        files.append(target / name)
    mp4 = directory / next(n for n in expected if n.endswith(".mp4"))
    for i in range(copies):
        os.link(mp4, target / f"copy{i:03d}.mp4")
        files.append(target / f"copy{i:03d}.mp4")
    text = target / "not_a_video.mp4"
    text.write_text("This is not a video.\n" * 200, encoding="utf-8")
    files.append(text)
    if hang:
        os.link(mp4, target / "__mediad_hang__.mp4")
        files.append(target / "__mediad_hang__.mp4")
    return files


def run_to_completion(
    env: dict[str, str], files: list[Path], sql: SQL, schema: str, metrics_port: int
) -> int:
    """Queues the files, waits until every row is done or failed and the counters show it;
    returns the number of attempts (each is counted once by mediad_files_total)."""
    result = mediad("enqueue", *map(str, files), env=env)
    assert result.returncode == 0, result.stderr

    def finished() -> bool:
        c = counts(sql, schema)
        return c["pending"] == c["running"] == 0 and c["done"] + c["failed"] == len(files)

    wait_until(finished, 120, f"the {len(files)} rows to finish")
    [(attempts,)] = sql(f'SELECT sum(attempts) FROM "{schema}".files')
    # The counters move right after the write-back commits: wait until they show it all.
    wait_until(
        lambda: sample_sum(scrape(metrics_port), "mediad_files_total") == attempts,
        30,
        "mediad_files_total to count every attempt",
    )
    return int(attempts)


@pytest.mark.slow
@needs_promtool
def test_metrics_of_a_real_run_pass_promtool_check_metrics(
    corpus: tuple[Path, dict[str, Expected]],
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    port = free_port()
    env = {**mediad_env, "MEDIAD_METRICS_LISTEN": f"127.0.0.1:{port}"}
    files = feed(corpus, tmp_path / "media", copies=10)
    daemon = daemons(env=env)
    daemon.wait_started()
    assert run_to_completion(env, files, sql, schema, port) == len(files)
    assert counts(sql, schema)["failed"] == 1

    text = scrape(port)
    (tmp_path / "metrics.txt").write_text(text)
    # The run shows in the exposition: a done, a failure by class, the histogram, build info.
    files_total = {
        (s.labels["outcome"], s.labels["error_class"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mediad_files_total"
    }
    # Every outcome and class is exported from the start (at 0): only these moved.
    assert {key: value for key, value in files_total.items() if value} == {
        ("done", ""): len(files) - 1,
        ("failed", "unsupported"): 1,
    }
    assert ("failed", "timeout") in files_total
    assert re.search(r"^mediad_extract_duration_seconds_count \d", text, re.MULTILINE)
    assert re.search(r'^mediad_build_info\{version="[^"]+"\} 1\.0$', text, re.MULTILINE)
    checked = run_tool("check", "metrics", stdin=text)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, ""), (
        "promtool check metrics complained:\n" + checked.stdout + checked.stderr
    )
    assert daemon.stop() == 0


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], PrometheusAPI]]:
    """Starts a real Prometheus scraping 127.0.0.1:<port> every second, with alerts.yml."""
    started: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(target_port: int) -> PrometheusAPI:
        assert PROMETHEUS is not None
        web_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            f"rule_files:\n  - {json.dumps(str(ALERTS))}\n"
            "scrape_configs:\n"
            "  - job_name: mediad\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((process, log))
        api = PrometheusAPI(f"http://127.0.0.1:{web_port}")

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            return api.ready()

        wait_until(ready, 60, "Prometheus to be ready", interval=0.2)
        return api

    yield start
    for process, log in started:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
@needs_prometheus
def test_every_panel_and_alert_query_works_on_a_real_prometheus(
    corpus: tuple[Path, dict[str, Expected]],
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    prometheus: Callable[[int], PrometheusAPI],
    sql: SQL,
    schema: str,
) -> None:
    port = free_port()
    instance = f"127.0.0.1:{port}"
    env = {
        **mediad_env,
        "MEDIAD_METRICS_LISTEN": instance,
        # A file that hangs past the timeout (a `timeout` failure and a worker restart) and
        # recycling, so the failure and restart panels have data too.
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "3",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "2",
        "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "0.1",
        "MEDIAD_DAEMON_MAX_FILES_PER_WORKER": "15",
    }
    files = feed(corpus, tmp_path / "media", copies=40, hang=True)
    daemon = daemons(env=env)
    daemon.wait_started()
    api = prometheus(port)
    started = time.monotonic()
    wait_until(
        lambda: api.vector(f'up{{job="mediad", instance="{instance}"}} == 1'),
        60,
        "Prometheus to scrape mediad",
        interval=0.2,
    )

    attempts = run_to_completion(env, files, sql, schema, port)
    assert counts(sql, schema)["failed"] == 2  # the text file and the hanging one

    # Prometheus has scraped the final counters (and a few samples after them).
    def scraped_all() -> bool:
        total = api.vector(f'sum(mediad_files_total{{instance="{instance}"}})')
        return bool(total) and float(total[0]["value"][1]) == attempts

    wait_until(scraped_all, 30, "Prometheus to scrape the final counters", interval=0.2)

    # Series born at the end of the run (a labelled counter's first increment) need a few
    # samples before rate() and increase() see them.
    def every_series_scraped_thrice() -> bool:
        return all(
            float(row["value"][1]) >= 3
            for name in sorted(exported_names())
            for row in api.vector(f'min(count_over_time({name}{{instance="{instance}"}}[1h]))')
        )

    wait_until(every_series_scraped_thrice, 30, "three scrapes of every series", interval=0.5)

    # A window that covers the whole run, so rates and quantiles see every file.
    window = f"{math.ceil(time.monotonic() - started) + 10}s"
    variables = {
        "$datasource": "prometheus",
        "$job": "mediad",
        "$instance": instance,
        "$daemon": ".*",
        "$__rate_interval": window,
        "$__interval": "1s",
        "$__range": window,
    }
    assert set(GRAFANA_BUILTINS) <= set(variables)

    dashboard = json.loads(DASHBOARD.read_text())
    errors, empty = [], []
    for title, ref, raw in panel_queries(dashboard):
        expr = substitute(raw, variables)
        answer = api.query(expr)
        if answer["status"] != "success":
            errors.append(f"{title} [{ref}]: {expr}: {answer.get('error')}")
        elif not finite_values(answer) and (title, ref) not in MAY_BE_EMPTY:
            empty.append(f"{title} [{ref}]: {expr}: {answer['data']['result']}")
    assert not errors, "panel queries that fail:\n" + "\n".join(errors)
    assert not empty, "panels without data after a real run:\n" + "\n".join(empty)

    # The run shows where it should: failures by class, restarts by reason.
    first_query = {title: expr for title, _ref, expr in reversed(panel_queries(dashboard))}

    def label_values(title: str, *labels: str) -> set[tuple[str, ...]]:
        """The label sets a panel shows with a value other than 0 (every series exists
        from the start, at 0)."""
        rows = api.vector(substitute(first_query[title], variables))
        return {
            tuple(r["metric"].get(label, "") for label in labels)
            for r in rows
            if float(r["value"][1]) != 0
        }

    assert label_values("Failures by class", "outcome", "error_class") == {
        ("failed", "unsupported"),
        ("retry", "timeout"),
        ("failed", "timeout"),
    }
    assert ("timeout",) in label_values("Worker restarts by reason", "reason")

    # Every alert is loaded, evaluates without error, and none fires on a healthy run.
    groups = api.get("/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert sorted(rules) == sorted(alert_names())
    wait_until(
        lambda: all(
            r["health"] != "unknown"
            for g in api.get("/api/v1/rules")["data"]["groups"]
            for r in g["rules"]
        ),
        30,
        "every rule to be evaluated",
        interval=0.2,
    )
    for group in api.get("/api/v1/rules")["data"]["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
            answer = api.query(rule["query"])
            assert answer["status"] == "success", (rule["name"], answer)
    firing = [a for a in api.get("/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]
    assert not firing, firing

    # Every series selector of the panels and the alerts matches series mediad really
    # exports, labels included: a typo in a label value would make a panel silently empty.
    used = {s for _t, _r, e in panel_queries(dashboard) for s in selectors(e)}
    used |= {s for rule in rules.values() for s in selectors(rule["query"])}
    unmatched = [
        s
        for s in sorted(used)
        if s.split("{")[0] not in SELECTORS_MAY_BE_EMPTY
        and not api.vector(f"last_over_time({substitute(s, variables)}[{window}])")
    ]
    assert not unmatched, f"selectors matching no series: {unmatched}"
    assert daemon.stop() == 0
