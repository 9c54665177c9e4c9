"""Mutation check: do the fidelity tests catch a wrong model?

Run: ``python bench/mutations.py [--tests tests/test_fidelity.py ...] [--only NAME ...]
[--out bench/results/mutations.txt]``.

Each mutation is one deliberate change to the model (a constant of larvaworld 2.5.1 or a line of the
engine's code): the script copies ``larvastudy/`` to a temporary directory, replaces the exact old
text by the new one (refusing, loudly, if the old text does not occur exactly once), and runs
``python -m pytest -x -q`` on the test files in a subprocess whose ``PYTHONPATH`` starts with the
copy (``PYTHONSAFEPATH=1`` and a working directory outside the checkout keep the checkout itself off
``sys.path``). That subprocess asserts that ``larvastudy`` is imported from the copy before it runs
the tests. A mutation is *killed* when a test fails, *survives* when all pass. The unmutated copy runs
first and must pass (the baseline). A surviving mutation means a figure is missing from
tests/data/larvaworld_reference.toml.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _report import report

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "larvastudy"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str       # relative to larvastudy/
    old: str
    new: str
    what: str


MUTATIONS = [
    # Constants in the engine's code.
    Mutation("interference width", "engine/loop.py", "self.att_scale = np.full(n, -0.5)",
             "self.att_scale = np.full(n, -0.25)", "phasic attenuation Gaussian of width √2 instead of 1 (§3.4)"),
    Mutation("arena margin", "engine/arena.py", "BOUNDARY_MARGIN = 0.96", "BOUNDARY_MARGIN = 0.90",
             "boundary_margin 0.96 -> 0.90 (§2.3)"),
    Mutation("linear correction step", "engine/loop.py", "LIN_CORRECTION = 0.00011", "LIN_CORRECTION = 0.00022",
             "arena speed correction 0.00011 -> 0.00022 m/s per iteration (§2.3)"),
    Mutation("angular correction step", "engine/loop.py", "ANG_CORRECTION = 8.0 * math.pi / 90.0",
             "ANG_CORRECTION = 4.0 * math.pi / 90.0", "arena heading correction 8π/90 -> 4π/90 rad/s (§2.3)"),
    Mutation("turner adaptation gain", "engine/turner.py", "self.g0, self.g1 = rows(6.0), rows(0.0081)",
             "self.g0, self.g1 = rows(6.0), rows(0.0064)", "g = 6 + (0.08·A)² instead of (0.09·A)² (§3.3)"),
    # Code.
    Mutation("runs one stride longer", "engine/loop.py", "ended = (self.n_str >= self.n_exp + self.bout_extra)",
             "ended = (self.n_str > self.n_exp + self.bout_extra)",
             "'>=' -> '>': a run one stride longer than each model's (deviation 3)"),
    Mutation("pauses one tick longer", "engine/loop.py", "rested = (self.ticks >= self.pause_len + self.bout_extra)",
             "rested = (self.ticks > self.pause_len + self.bout_extra)",
             "'>=' -> '>': a pause one tick longer than each model's (deviation 3)"),
    Mutation("no tail drag", "engine/loop.py",
             "self.tail += self.bend * _clip(v * self.tail_gain, self.zeros, self.ones)",
             "self.tail += 0.0 * self.bend", "the tail no longer follows the head (§2.3 step 4)"),
    Mutation("olfactor not limited", "engine/loop.py", "            if self.clip_olfactor:  # deviation 2",
             "            if False:  # deviation 2", "corrected mode loses its [-1, 1] olfactor range (deviation 2)"),
    Mutation("olfactor senses at step 0", "engine/loop.py", "        if t > 0:\n            ratio =",
             "        if t >= 0:\n            ratio =", "the first step's change is not 0 (§4.2)"),
    Mutation("food reach doubled", "engine/loop.py", "self.reach2 = np.square(p[\"radius\"])[:, None]",
             "self.reach2 = np.square(2 * p[\"radius\"])[:, None]", "food found within 6 mm instead of 3 mm (§5.3)"),
    Mutation("pmf evaluated off-grid", "engine/bouts.py", "p = _pdf(dist, np.asarray(k * step, dtype=np.float64))",
             "p = _pdf(dist, np.asarray((k + 0.5) * step, dtype=np.float64))",
             "bout pdf sampled at (k + ½)·Δ instead of k·Δ (§3.6)"),
    Mutation("placement radius uniform", "engine/setup.py",
             "x = X + np.sqrt(rng.uniform(0.0, float(sx) ** 2, n)) * np.cos(a)",
             "x = X + rng.uniform(0.0, float(sx), n) * np.cos(a)", "x radius U(0, sx) instead of sqrt(U(0, sx²)) (§7)"),
    Mutation("PI band", "engine/metrics.py", "band = 0.1 * self.arena_width", "band = 0.05 * self.arena_width",
             "PI's neutral band |x| < 0.05·W instead of 0.1·W (§8)"),
    Mutation("dispersal one step late", "engine/metrics.py", "round(t / dt) - 1: m", "round(t / dt): m",
             "dsp_0_40/60 read after step 401/601 (§8)"),
    Mutation("turner drive mapping swapped", "engine/turner.py",
             "np.where(drive >= zero, self.up, self.down) * drive",
             "np.where(drive >= zero, self.down, self.up) * drive",
             "A = 20 + 10·I for I ≥ 0 and 20 + 20·I below, instead of the reverse (§3.3)"),
    Mutation("strides never redrawn", "engine/loop.py", "        self.stride_i += completed\n",
             "        self.stride_i += 0 * completed\n", "one stride length per larva for the whole run (§3.2)"),
    Mutation("no attenuation while feeding", "engine/loop.py",
             "att = np.where(self.feeding > 0, self._coupling(self.feeder_phase), att)", "att = att",
             "the feeder phase no longer attenuates the turner (§3.4)"),
    Mutation("no turner warm-up", "engine/setup.py", "[warm_rng.binomial(WARMUP_FLIPS, 0.5, n)]",
             "[np.zeros(n, int) + 0 * warm_rng.binomial(WARMUP_FLIPS, 0.5, n)]",
             "every turner starts from the zero state (§3.3 warm-up)"),
    Mutation("shared initial crawler phase", "engine/setup.py",
             "if shared_phase is not None else phase_rng.uniform(0.0, TWO_PI, n)",
             "if shared_phase is not None else np.full(n, phase_rng.uniform(0.0, TWO_PI))",
             "corrected mode shares one initial crawler and feeder phase, as larvaworld's (deviation 1)"),
    Mutation("crawler starts still", "engine/loop.py",
             'self.crawling = np.ones(n) if "crawl_from_first_step" in bugs else np.zeros(n)',
             "self.crawling = np.zeros(n)", "larvaworld's larvae stand still in their first step (deviation 15)"),
    Mutation("food grid cell rounded", "engine/loop.py", "np.clip(np.floor(gx * (tip.real",
             "np.clip(np.round(gx * (tip.real", "grid column round() instead of floor() (§5.2)"),
    Mutation("odor spread", "definition/presets.py", '"spread": 0.01 * math.sqrt(c)', '"spread": 0.01 * c',
             "Odor.oG spread 0.01·c instead of 0.01·√c (§4.1)"),
    # Model constants (presets.py, spec §6).
    Mutation("olfactor decay_coef", "definition/presets.py", '"decay_coef": 0.1', '"decay_coef": 0.5',
             "olfactor decay_coef 0.1 -> 0.5 (§4.2)"),
    Mutation("torque_coef", "definition/presets.py", '"torque_coef": 0.5', '"torque_coef": 0.4', "0.5 -> 0.4 (§2.2)"),
    Mutation("ang_damping", "definition/presets.py", '"ang_damping": 1.0', '"ang_damping": 1.2', "1.0 -> 1.2 (§2.2)"),
    Mutation("body_spring_k", "definition/presets.py", '"body_spring_k": 1.0', '"body_spring_k": 0.8',
             "1.0 -> 0.8 (§2.2)"),
    Mutation("crawler freq", "definition/presets.py", '"freq": 1.42', '"freq": 1.5', "1.42 -> 1.5 Hz (§3.2)"),
    Mutation("max_scaled_vel", "definition/presets.py", '"max_scaled_vel": 0.51', '"max_scaled_vel": 0.6',
             "0.51 -> 0.6 (§3.2)"),
    Mutation("stride_dst_std", "definition/presets.py", '"stride_dst_std": 0.04', '"stride_dst_std": 0.05',
             "0.04 -> 0.05 body lengths (§3.2)"),
    Mutation("attenuation", "definition/presets.py", '"attenuation": 0.1,', '"attenuation": 0.2,', "0.1 -> 0.2 (§3.4)"),
    Mutation("attenuation_max", "definition/presets.py", '"attenuation_max": 0.6', '"attenuation_max": 0.5',
             "0.6 -> 0.5 (§3.4)"),
    Mutation("max_attenuation_phase", "definition/presets.py", '"max_attenuation_phase": 3.4',
             '"max_attenuation_phase": 3.0', "3.4 -> 3.0 rad (§3.4)"),
    Mutation("stridechain mu", "definition/presets.py", '"mu": 1.39115', '"mu": 1.5',
             "lognormal mu 1.39115 -> 1.5 (§3.6)"),
    Mutation("stridechain sigma", "definition/presets.py", '"sigma": 1.14667', '"sigma": 1.0',
             "lognormal sigma 1.14667 -> 1.0 (§3.6)"),
    Mutation("pause beta", "definition/presets.py", '"beta": 1.01503', '"beta": 0.9',
             "exponential beta 1.01503 -> 0.9 (§3.6)"),
    Mutation("V_bite", "definition/presets.py", '"V_bite": 0.001}', '"V_bite": 0.002}', "0.001 -> 0.002 (§3.7, §5.5)"),
    Mutation("feeder freq", "definition/presets.py", '_FEEDER: Tree = {"freq": 2.0', '_FEEDER: Tree = {"freq": 2.5',
             "2.0 -> 2.5 Hz (§3.7)"),
    Mutation("feeder EEB", "definition/presets.py", '"feeder": _model(None, feeder=True, eeb=0.5)',
             '"feeder": _model(None, feeder=True, eeb=0.6)', "EEB 0.5 -> 0.6 (§5.4, §6)"),
]


def apply(root: Path, mutation: Mutation) -> None:
    """Apply ``mutation`` to the package copy under ``root``; refuse unless the old text occurs exactly once."""
    path = root / "larvastudy" / mutation.file
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"mutation {mutation.name!r}: {mutation.old!r} occurs {count} times in "
                         f"larvastudy/{mutation.file}, not once: the mutation list is out of date")
    path.write_text(text.replace(mutation.old, mutation.new))


def run_tests(root: Path, tests: list[str], timeout: float) -> tuple[str, str, float]:
    """(verdict, first failing test or reason, seconds) for the tests against the package under ``root``."""
    expected = str((root / "larvastudy").resolve())
    code = ("import sys, larvastudy, pytest\n"
            f"where = larvastudy.__file__\n"
            f"if not where.startswith({expected!r}):\n"
            f"    sys.exit('larvastudy imported from ' + where + ', not from the copy')\n"
            f"sys.exit(pytest.main(['-x', '-q', '-p', 'no:cacheprovider', *{[str(REPO / t) for t in tests]!r}]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("CI", None)
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed", f"timeout after {timeout:.0f} s", time.monotonic() - started
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    if "not from the copy" in output:
        raise SystemExit(output.strip())
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in output.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    if done.returncode == 0:
        return "survived", "", seconds
    if done.returncode == 1 and failed:
        return "killed", failed[0].split("::", 1)[-1], seconds
    tail = output.strip().splitlines()[-1] if output.strip() else f"exit code {done.returncode}"
    return "killed", f"error: {tail[:100]}", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", nargs="+", default=["tests/test_fidelity.py"],
                        help="test files, relative to the repository (default: tests/test_fidelity.py)")
    parser.add_argument("--only", nargs="+", help="run only the mutations with these names")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    mutations = [m for m in MUTATIONS if not args.only or m.name in args.only]
    started = time.monotonic()
    lines = [f"mutation check: {len(mutations)} deliberate model changes, each against "
             f"pytest -x -q {' '.join(args.tests)} (larvastudy imported from a mutated copy)"]
    with tempfile.TemporaryDirectory(prefix="larvastudy-mutations-") as tmp:
        def fresh(name: str) -> Path:
            root = Path(tmp) / name
            shutil.copytree(PACKAGE, root / "larvastudy", ignore=shutil.ignore_patterns("__pycache__"))
            return root

        for mutation in mutations:   # refuse before anything runs if the list no longer matches the code
            apply(fresh("check"), mutation)
            shutil.rmtree(Path(tmp) / "check")
        verdict, detail, seconds = run_tests(fresh("baseline"), args.tests, args.timeout)
        lines.append(f"baseline (unmutated copy): {'passes' if verdict == 'survived' else 'FAILS: ' + detail} "
                     f"({seconds:.0f} s)")
        print(lines[-1], flush=True)
        if verdict != "survived":
            report(lines, args.out)
            raise SystemExit(1)
        killed = 0
        width = max(len(m.name) for m in mutations)
        for i, mutation in enumerate(mutations):
            root = fresh(f"m{i}")
            apply(root, mutation)
            verdict, detail, seconds = run_tests(root, args.tests, args.timeout)
            killed += verdict == "killed"
            lines.append(f"{mutation.name:{width}s}  {verdict:8s} {seconds:5.0f} s  {detail or '-'}   "
                         f"[larvastudy/{mutation.file}: {mutation.what}]")
            print(lines[-1], flush=True)
            shutil.rmtree(root)
    lines.append(f"kill rate: {killed}/{len(mutations)} ({100.0 * killed / len(mutations):.0f} %); "
                 f"{time.monotonic() - started:.0f} s in all on {os.cpu_count()} cores")
    report(lines[-1:], None)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if killed < len(mutations):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
