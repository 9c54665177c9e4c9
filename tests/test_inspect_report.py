"""``larvastudy report``, ``power`` and the exported summary table, run as a user runs them."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlite_utils

from larvastudy.cli import main

DRIVEN = """experiment = "PItest_off"
Nsims = 2
metrics = ["PI", "v_mu"]
[sample]
"gain_dict.CS" = [-100.0, 0.0, 100.0]
"EEB_decay" = [0.5, 1.0, 2.0]
[fixed]
duration = 0.5
"""
FIGURES = {"PI_heatmap", "v_mu_heatmap", "importances", "PI_main_effects", "v_mu_main_effects"}


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``larvastudy ARGS`` in a new process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "larvastudy.cli", *args], cwd=folder, capture_output=True,
                          text=True, timeout=120)


def quick(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``larvastudy ARGS`` in this process (no start-up cost), with the same result fields as :func:`cli`."""
    stdout, stderr, cwd = io.StringIO(), io.StringIO(), Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as stop:  # argparse
                code = stop.code
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    (folder / "driven.toml").write_text(DRIVEN)
    result = quick(folder, "run", "driven.toml", "--study-name", "driven")
    assert result.returncode == 0, result.stderr
    assert quick(folder, "run", "driven.toml", "--nsims", "1", "--study-name", "single").returncode == 0
    return folder


class Page(HTMLParser):
    """Headings, embedded images and any reference to an outside resource."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: dict[str, bytes] = {}
        self.external: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self._in_heading = tag in ("h1", "h2")
        if tag == "img" and attrs["src"].startswith("data:image/png;base64,"):
            self.images[attrs["alt"]] = base64.b64decode(attrs["src"].split(",", 1)[1])
        elif any(attrs.get(k) for k in ("src", "href")) or tag in ("link", "script", "iframe"):
            self.external.append(f"{tag} {attrs}")

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings.append(data)
            self._in_heading = False


def test_report_is_self_contained_html_with_every_figure(swept) -> None:
    result = cli(swept, "report", "driven")
    assert result.returncode == 0, result.stderr
    path = swept / "storage" / "driven" / "report.html"
    assert f"report: {path}" in result.stdout
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.headings == ["larvastudy report: driven", "Sweep definition", "Progress",
                             "Replicate statistics and robustness", "Statistical power", "Parameter importances",
                             "Figures"]
    assert set(page.images) == FIGURES
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000 for png in page.images.values())
    assert page.external == []
    text = path.read_text(encoding="utf-8")
    assert "18/18 simulations complete" in text and "gain_dict.CS" in text


def test_power_prints_replicates_needed(swept) -> None:
    result = quick(swept, "power", "driven", "--metric", "PI", "--delta", "0.1", "--half-width", "0.1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "study 'driven': 2 replicates per grid point; replicate SD pooled over grid points"
    assert lines[1].split() == ["metric", "SD", "df", "CI95", "now", "±", "Nsims", "for", "±0.1", "power", "now",
                                "Δ0.1", "Nsims", "for", "Δ0.1", "@80%"]
    metric, sd, dof, *_, nsims_delta = lines[2].split()
    assert (metric, dof) == ("PI", "9") and 0 < float(sd) < 1 and int(nsims_delta) >= 2


def test_export_writes_summary_with_robustness_as_a_table(swept) -> None:
    assert quick(swept, "export", "driven").returncode == 0
    db = sqlite_utils.Database(swept / "storage" / "larvastudy.db")
    rows = list(db.query("select metric, n, cv, unstable from summary_driven"))
    assert len(rows) == 18 and {r["n"] for r in rows} == {2}
    assert all(r["cv"] is None for r in rows if r["metric"] == "PI")
    assert all(r["cv"] > 0 and r["unstable"] in (0, 1) for r in rows if r["metric"] == "v_mu")
    assert (swept / "storage" / "driven" / "summary.csv").read_text().startswith(
        "metric,CS,EEB_decay,n,mean,std,sem,ci95_low,ci95_high,ci95_width,cv,unstable")


@pytest.mark.parametrize("args, message", [
    (["report", "missing"], "no larvastudy study 'missing'"),
    (["report", "driven", "--evaluator", "shap"], "invalid choice: 'shap'"),
    (["power", "driven", "--delta", "0"], "--delta must be a positive number"),
    (["power", "driven", "--metric", "nope"], "unknown metric 'nope'"),
    (["power", "single"], "no grid point has two completed replicates"),
    (["report", "driven", "-o", "driven.toml/r.html"], "cannot write driven.toml/r.html: Not a directory"),
])
def test_bad_requests_are_one_line_exit_2(swept, args, message) -> None:
    result = quick(swept, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
