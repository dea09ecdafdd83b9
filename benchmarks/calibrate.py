"""Calibrate the lessons' trained figures: run each lesson under several seeds, thread counts and
devices, without a Jupyter kernel, and turn the runs into bands.

    python benchmarks/calibrate.py run --lessons 02 03 04 --seeds 0 1 2 3 4 --threads 1 2 --jobs 2
    python benchmarks/calibrate.py summarise

`run` executes the code cells of each lesson in order as a plain script (figures drawn off-screen)
with $COURSE_SEED, $OMP_NUM_THREADS and, for --device cpu on a GPU machine, no visible GPU. Every
`course_lib.calibration.check` in the lesson records its figure instead of asserting it. One JSON
line per run (figures, cell times, setting, machine) is appended to benchmarks/calibration_runs.jsonl.
`summarise` reads all the runs and writes the bands: course_lib/calibration.json, which the lessons
assert against, and the table benchmarks/calibration.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "benchmarks" / "calibration_runs.jsonl"
TABLE_MD = ROOT / "benchmarks" / "calibration.md"
sys.path.insert(0, str(ROOT))


def lesson_path(lesson: str) -> Path:
    found = sorted((ROOT / "notebooks").glob(f"{lesson}_*.ipynb"))
    if len(found) != 1:
        raise SystemExit(f"--lessons: no single notebook notebooks/{lesson}_*.ipynb")
    return found[0]


def code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def execute(path: Path) -> dict:
    """Run one lesson's code cells in one namespace (the child process); return what happened."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt

    warnings.filterwarnings("ignore", message=".*non-interactive.*")
    namespace = {"__name__": "__main__"}
    times, error = [], None
    start = time.perf_counter()
    for i, source in enumerate(code_cells(path)):
        t = time.perf_counter()
        try:
            exec(compile(source, f"{path.name}[code cell {i}]", "exec"), namespace)
        except Exception as exc:  # report the cell and stop, as a kernel would
            error = f"code cell {i}: {type(exc).__name__}: {exc}"
            break
        finally:
            plt.close("all")
            times.append(round(time.perf_counter() - t, 2))
    return {"seconds": round(time.perf_counter() - start, 1), "cell_seconds": times, "error": error}


def machine() -> dict:
    import torch

    info = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_one(lesson: str, seed: int, threads: int, device: str, own_data: bool = False) -> dict:
    """One lesson under one setting, in a fresh Python process; with own_data, in an empty
    COURSE_DATA of its own, so that everything the lesson caches (data, pretrained weights) is
    made again under that setting."""
    env = dict(os.environ, COURSE_SEED=str(seed), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory() as tmp:
        env["COURSE_RECORD"] = record = str(Path(tmp) / "figures.jsonl")
        if own_data:
            env["COURSE_DATA"] = str(Path(tmp) / "data")
        out = Path(tmp) / "result.json"
        proc = subprocess.run([sys.executable, __file__, "child", str(lesson_path(lesson)), str(out)],
                              env=env, cwd=ROOT / "notebooks", capture_output=True, text=True)
        result = json.loads(out.read_text()) if out.exists() else {
            "error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
        figures = [json.loads(line) for line in Path(record).read_text().splitlines()] \
            if Path(record).exists() else []
    result.update(lesson=lesson, seed=seed, threads=threads, device=device, own_data=own_data,
                  figures={f["key"]: f["value"] for f in figures},
                  better={f["key"]: f["better"] for f in figures})
    return result


def cmd_run(args) -> None:
    jobs = [(lesson, seed, threads, args.device, args.own_data) for threads in args.threads
            for seed in args.seeds for lesson in args.lessons]
    info = machine() if args.device != "cpu" else {**machine(), "gpu": None}

    def work(job):
        result = run_one(*job)
        result["machine"] = info
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")
        status = result["error"] or "ok"
        print(f"lesson {job[0]} seed {job[1]} threads {job[2]} {job[3]}: "
              f"{result.get('seconds', '?')} s, {status}", flush=True)
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(work, jobs))


def setting(run: dict) -> str:
    if run["device"] != "cpu":
        return f"{run['device']} ({run['machine'].get('gpu')})"
    return (f"cpu {run['machine'].get('cpu_capability', '')}, "
            f"{run['threads']} thread{'s' if run['threads'] > 1 else ''}").replace("cpu , ", "cpu, ")


def cmd_summarise(args) -> None:
    from course_lib.calibration import MARGIN_RELATIVE, MARGIN_SPREAD, TABLE, bound_for

    runs = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
    ok = [r for r in runs if not r.get("error")]
    values, better, per_setting, seconds = {}, {}, {}, {}
    for r in ok:
        for key, v in r["figures"].items():
            values.setdefault(key, []).append(v)
            better[key] = r["better"][key]
            per_setting.setdefault((key, setting(r)), []).append(v)
        seconds.setdefault((r["lesson"], setting(r)), []).append(r["seconds"])
    table = {}
    for key in sorted(values):
        v = values[key]
        lo, med, hi = min(v), statistics.median(v), max(v)
        table[key] = {"better": better[key], "minimum": lo, "median": med, "maximum": hi,
                      "runs": len(v), "bound": round(bound_for(better[key], lo, med, hi), 4)}
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")

    lines = ["# Calibration of the lessons' trained figures", "",
             "Written by `python benchmarks/calibrate.py summarise` from the runs in",
             "`benchmarks/calibration_runs.jsonl`; the lessons assert against `course_lib/calibration.json`.",
             "", f"Runs: {len(ok)} succeeded, {len(runs) - len(ok)} failed. Seeds: "
             f"{sorted({r['seed'] for r in ok})}. Settings: {sorted({setting(r) for r in ok})}.", "",
             f"Bound: below the minimum (or above the maximum, for figures where lower is better) by "
             f"max({MARGIN_SPREAD} x (max - min), {MARGIN_RELATIVE} x |median|).", "",
             "| figure | better | bound | all runs: min / median / max (n) | per setting: min / median / max (n) |",
             "|---|---|---|---|---|"]
    for key, row in table.items():
        settings = "; ".join(
            f"{s}: {min(v):.3g} / {statistics.median(v):.3g} / {max(v):.3g} ({len(v)})"
            for (k, s), v in sorted(per_setting.items()) if k == key)
        lines.append(f"| `{key}` | {row['better']} | {row['bound']:.3g} | {row['minimum']:.3g} / "
                     f"{row['median']:.3g} / {row['maximum']:.3g} ({row['runs']}) | {settings} |")
    lines += ["", "## Run times (seconds, whole lesson, data cached)", "",
              "Wall-clock seconds of single runs, often with another run or other work beside them on",
              "the same cores: upper bounds, comparable only within this table.", "",
              "| lesson | setting | min / median / max (n) |", "|---|---|---|"]
    for (lesson, s), v in sorted(seconds.items()):
        lines.append(f"| {lesson} | {s} | {min(v):.0f} / {statistics.median(v):.0f} / {max(v):.0f} ({len(v)}) |")
    failed = [r for r in runs if r.get("error")]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- lesson {r['lesson']}, seed {r['seed']}, {setting(r)}: {r['error']}" for r in failed]
    TABLE_MD.write_text("\n".join(lines) + "\n")
    print(f"wrote {TABLE} and {TABLE_MD}: {len(table)} figures from {len(ok)} runs")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        result = execute(Path(sys.argv[2]))
        Path(sys.argv[3]).write_text(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run lessons and append one line per run")
    run.add_argument("--lessons", nargs="+", default=["01", "02", "03", "04", "05"])
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    run.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    run.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    run.add_argument("--jobs", type=int, default=1, help="lessons run at once")
    run.add_argument("--out", default=str(RUNS))
    run.add_argument("--own-data", action="store_true",
                     help="each run in an empty COURSE_DATA: caches (pretrained weights) made again")
    summ = sub.add_parser("summarise", help="turn the runs into bands")
    summ.add_argument("--out", default=str(RUNS))
    args = parser.parse_args()
    {"run": cmd_run, "summarise": cmd_summarise}[args.cmd](args)


if __name__ == "__main__":
    main()
