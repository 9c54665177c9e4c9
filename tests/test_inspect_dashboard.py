"""``larvastudy dashboard``: a real optuna-dashboard process on 127.0.0.1, its HTTP API and a headless
Chromium rendering the study page; the process always ends (Ctrl-C first, then kill)."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from larvastudy.api import run_batch
from larvastudy.cli import main
from larvastudy.definition.batch import batch_from_kwargs
from larvastudy.study import storage_url

from conftest import missing

optuna.logging.set_verbosity(optuna.logging.WARNING)
BATCH = batch_from_kwargs(experiment="PItest_off", name="gains", Nsims=1, metrics=["PI", "v_mu"],
                          sample={"gain_dict.CS": [-100.0, 100.0], "gain_dict.UCS": [-100.0, 0.0, 100.0]},
                          fixed={"duration": 0.2})
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Dashboard:
    """A ``larvastudy dashboard`` process and the URL it printed."""

    def __init__(self, folder: Path, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "larvastudy.cli", "dashboard", *args], cwd=folder,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        found = re.search(r"http://[\d.]+:(\d+)/dashboard\S*", line)
        if found is None:
            self.stop()
            raise AssertionError(f"no URL printed: {line!r} {self.process.stderr.read()!r}")
        self.url = found.group()
        self.base = f"http://127.0.0.1:{found.group(1)}"  # where this test reaches it, whatever it listens on

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.load(response)

    def delete(self, path: str) -> int:
        """The HTTP status of a DELETE request."""
        try:
            with urllib.request.urlopen(urllib.request.Request(self.base + path, method="DELETE"), timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as error:
            return error.code

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, then kill if it lingers; the exit code and the rest of stdout (stderr: ``self.errors``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            rest, self.errors = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, self.errors = self.process.communicate()
        return self.process.returncode, rest


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard")
    run_batch(BATCH, storage=storage_url(folder / "storage" / "larvastudy.db"))
    return folder


@pytest.fixture(scope="module")
def dashboard(folder) -> Iterator[Dashboard]:
    server = Dashboard(folder, "gains", "--port", "0")
    try:
        yield server
    finally:
        server.stop()


def test_url_is_local_and_names_the_study(dashboard) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/dashboard/studies/\d+", dashboard.url)


def test_api_lists_the_study_with_trials_params_metrics_and_seeds(dashboard) -> None:
    summaries = dashboard.get("/api/studies")["study_summaries"]
    (summary,) = [s for s in summaries if s["study_name"] == "gains"]
    study = dashboard.get(f"/api/studies/{summary['study_id']}")
    trials = study["trials"]
    assert len(trials) == BATCH.grid_size and {t["state"].upper() for t in trials} == {"COMPLETE"}
    for trial in trials:
        params = {p["name"] for p in trial["params"]}
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert {"gain_dict.CS", "gain_dict.UCS", "replicate"} <= params
        assert {"PI", "v_mu", "seed"} <= set(attrs) and -1 <= float(attrs["PI"]) <= 1 and int(attrs["seed"]) >= 0


def test_headless_chromium_renders_the_study_and_its_trials(dashboard, tmp_path) -> None:
    if shutil.which("chromium") is None:
        missing("chromium not installed (.ci/run installs it)")
    result = subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", "--virtual-time-budget=10000",
                             "--dump-dom", f"{dashboard.url}/trials"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", result.stdout, flags=re.S)))
    assert re.search(r"\bgains \(id=\d+\)", text), text[:500]
    assert f"{BATCH.grid_size} Trials" in text
    assert "User Attributes" in text and "seed" in text


def test_ctrl_c_stops_cleanly(folder) -> None:
    server = Dashboard(folder, "--port", "0")
    try:
        assert server.url.endswith("/dashboard") and server.get("/api/studies")["study_summaries"]
    finally:
        code, rest = server.stop()
    assert code == 0 and "dashboard stopped" in rest


def test_exposed_dashboard_warns_and_is_read_only(folder) -> None:
    server = Dashboard(folder, "gains", "--host", "0.0.0.0", "--expose", "--port", "0")
    try:
        assert server.url.startswith("http://0.0.0.0:")
        study_id = server.get("/api/studies")["study_summaries"][0]["study_id"]
        assert server.delete(f"/api/studies/{study_id}") == 403
        assert [s["study_name"] for s in server.get("/api/studies")["study_summaries"]] == ["gains"]
    finally:
        code, _ = server.stop()
    assert code == 0 and server.errors.count("\n") == 1
    assert "no authentication" in server.errors and "read-only" in server.errors


@pytest.mark.parametrize("args, message", [
    (["nope", "--port", "0"], "no larvastudy study 'nope'"),
    (["gains", "--port", "{busy}"], "cannot listen on 127.0.0.1:{busy}"),
    (["gains", "--host", "", "--port", "0"], "--host '' would serve the dashboard to the network"),
    (["gains", "--host", "0", "--port", "0"], "--host '0' would serve the dashboard to the network"),
    (["gains", "--host", "0.0.0.0", "--port", "0"], "add --expose to serve it read-only"),
    (["gains", "--host", "no-such-host.invalid", "--port", "0"], "is not an address or host name"),
])
def test_usage_errors_are_one_line_exit_2(folder, dashboard, capsys, monkeypatch, args, message) -> None:
    busy = dashboard.base.rsplit(":", 1)[1]
    monkeypatch.chdir(folder)
    assert main(["dashboard", *(a.format(busy=busy) for a in args)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message.format(busy=busy) in error
