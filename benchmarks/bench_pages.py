"""The dashboard at scale: every page as a user opens it, timed with Streamlit's AppTest.

    python benchmarks/bench_pages.py                      # 50k x 3 + predictions, COCO size, sample
    python benchmarks/bench_pages.py --scale 0.1 --pages review,report --datasets multi

Datasets (synthetic, seeded, written once to a folder and reused; no image files, so nothing is
embedded or decoded, and every image is a "missing file" finding, as in the issue):

* ``multi``: COCO-shaped, 50,000 images x 3 annotators (alice, bob looser, carol misses small
  objects and confuses classes; ~1.05M boxes) and one detector's ~349k predictions;
* ``coco``: COCO train2017's size, 118,287 images x 1 annotator (~860k boxes), with one
  detector's predictions (``--coco-predictions 0`` leaves them out);
* ``sample``: the bundled ``sample_data`` (300 real images, 3 annotators, one model).

Each dataset runs in one AppTest session of ``app.py`` (the sidebar picker loads it from
``--dataset``-like ``DATASET_QA_DATASET``), page by page in the app's order: the first visit
(the first run of app start + Overview includes loading the files), then a rerun after
changing one control of that page (a filter, a section, a gallery size; never an analysis
setting). On the Review page also: a decision recorded and the next item shown. The
store, the workspace and the review database are fresh temporary folders, so every first
visit is cold.

Prints a table per dataset with the targets of issue 22 (first visit < 10 s at scale, < 3 s on
the sample; rerun and decision < 1 s), the process's peak memory (target < 4 GB at 50k x 3),
the machine's load (``/proc/loadavg``) and a baseline measured in the same process (reading the
labels with ``qa.load``), so figures from a busy machine can be compared as ratios. Not a timed
test: ``--profile DIR`` writes a cProfile of each slow step for ``snakeviz``/``pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 0
FIRST_VISIT_TARGET_S = 10.0
SAMPLE_FIRST_VISIT_TARGET_S = 3.0
RERUN_TARGET_S = 1.0
MEMORY_TARGET_GB = 4.0
N_CLASSES = 80  # COCO's
BOXES_PER_IMAGE = 7.3  # COCO train2017: 860,001 boxes / 118,287 images
PREDS_PER_IMAGE = 7.0  # the 349k predictions over 50k images
ANNOTATORS = ("alice", "bob", "carol")
SIZES = [(640, 480), (480, 640), (640, 427), (500, 375), (427, 640), (640, 360)]

# page file -> (title in the table, what the rerun changes: (kind, widget key, value))
PAGES = {
    "overview": ("App start + Overview (load)", ("selectbox", "ov_show",
                                                 "images with validation problems")),
    "report": ("Health report", ("multiselect", "rep_statuses", ["fail", "warn"])),
    "balance": ("Class balance", ("radio", "bal_sort", "name")),
    "agreement": ("Annotator agreement", ("state", "agr_tab", "Disputed images")),
    "outliers": ("Outliers", ("state", "out_ckpt", "")),  # nothing embedded: a bare rerun
    "duplicates": ("Duplicates & leakage", ("radio", "dup_method", "exact")),
    "quality": ("Image quality", ("selectbox", "qual_check", "dark")),
    "disagreement": ("Model disagreement", ("number_input", "dis_n", 24)),
    "review": ("Review", ("multiselect", "rv_kinds", None)),  # None: the first kind offered
}

# further clicks on a page: (step, control, target); a tab computed when first opened has
# the first-visit target
EXTRA_STEPS = {
    "agreement": [("tab Confusion", ("state", "agr_tab", "Confusion"), RERUN_TARGET_S)],
    "disagreement": [
        ("tab Metrics", ("state", "dis_tab", "Model metrics"), FIRST_VISIT_TARGET_S),
        ("tab Confusion", ("state", "dis_tab", "Confusion"), RERUN_TARGET_S)],
}


# ------------------------------------------------------------------------------ datasets
def _coco_doc(image_ids, sizes, anns: dict, categories) -> dict:
    return {"info": {"description": "synthetic (benchmarks/bench_pages.py)"},
            "images": [{"id": int(i), "file_name": f"{int(i):012d}.jpg", "width": int(w),
                        "height": int(h)} for i, (w, h) in zip(image_ids, sizes)],
            "annotations": anns, "categories": categories}


def _boxes_json(ids, img, cat, x, y, w, h) -> list[dict]:
    r = lambda a: np.round(a, 1).tolist()  # noqa: E731
    return [{"id": int(k), "image_id": int(i), "category_id": int(c), "bbox": [bx, by, bw, bh],
             "area": round(bw * bh, 1), "iscrowd": 0}
            for k, i, c, bx, by, bw, bh in zip(ids.tolist(), img.tolist(), cat.tolist(),
                                               r(x), r(y), r(w), r(h))]


def write_dataset(folder: Path, n_images: int, annotators: tuple[str, ...],
                  preds_per_image: float, seed: int = SEED) -> Path:
    """A COCO folder: ``annotations/<annotator>.json`` (the same image list in each) and
    ``predictions/detector.json`` (COCO results). Objects per image ~ Poisson(7.3); each
    annotator draws each object with jitter (bob looser), misses some (carol: most small ones)
    and swaps classes sometimes (carol more often); the detector finds 80% of the objects
    (5% with the wrong class) and fills the rest with lower-scored background boxes."""
    rng = np.random.default_rng(seed)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    image_ids = np.arange(1, n_images + 1)
    size_idx = rng.integers(0, len(SIZES), n_images)
    sizes = [SIZES[k] for k in size_idx]
    iw = np.array([s[0] for s in SIZES])[size_idx].astype(float)
    ih = np.array([s[1] for s in SIZES])[size_idx].astype(float)
    n_obj = rng.poisson(BOXES_PER_IMAGE, n_images)
    img = np.repeat(image_ids, n_obj)
    oi = np.repeat(np.arange(n_images), n_obj)
    n = len(img)
    w = np.minimum(rng.lognormal(3.6, 0.9, n), iw[oi] - 1)
    h = np.minimum(rng.lognormal(3.6, 0.9, n), ih[oi] - 1)
    x = rng.uniform(0, iw[oi] - w)
    y = rng.uniform(0, ih[oi] - h)
    cat = rng.integers(1, N_CLASSES + 1, n)
    cats = [{"id": c, "name": f"class_{c}", "supercategory": "thing"}
            for c in range(1, N_CLASSES + 1)]
    next_id = 1
    jitter = {"alice": 0.03, "bob": 0.1, "carol": 0.03}
    for name in annotators:
        keep = rng.random(n) > 0.03
        if name == "carol":
            keep &= ~((w * h < 32 * 32) & (rng.random(n) < 0.7))
        c = cat.copy()
        swap = rng.random(n) < (0.08 if name == "carol" else 0.02)
        c[swap] = rng.integers(1, N_CLASSES + 1, int(swap.sum()))
        sd = jitter.get(name, 0.03)
        jx, jy = rng.normal(0, sd, (2, n)) * w, rng.normal(0, sd, (2, n)) * h
        k = np.flatnonzero(keep)
        ids = np.arange(next_id, next_id + len(k))
        next_id += len(k)
        doc = _coco_doc(image_ids, sizes, _boxes_json(
            ids, img[k], c[k], np.clip(x + jx[0], 0, None)[k], np.clip(y + jy[0], 0, None)[k],
            np.maximum(w + jx[1], 2)[k], np.maximum(h + jy[1], 2)[k]), cats)
        (folder / "annotations" / f"{name}.json").write_text(json.dumps(doc))
    if preds_per_image > 0:
        found = rng.random(n) < 0.8
        f = np.flatnonzero(found)
        pc = cat[f].copy()
        wrong = rng.random(len(f)) < 0.05
        pc[wrong] = rng.integers(1, N_CLASSES + 1, int(wrong.sum()))
        jit = rng.normal(0, 0.06, (4, len(f))) * np.r_[[w[f], h[f], w[f], h[f]]]
        n_bg = max(int(preds_per_image * n_images) - len(f), 0)
        bi = rng.integers(0, n_images, n_bg)
        bw = np.minimum(rng.lognormal(3.4, 0.9, n_bg), iw[bi] - 1)
        bh = np.minimum(rng.lognormal(3.4, 0.9, n_bg), ih[bi] - 1)
        pimg = np.r_[img[f], image_ids[bi]]
        px = np.r_[np.clip(x[f] + jit[0], 0, None), rng.uniform(0, iw[bi] - bw)]
        py = np.r_[np.clip(y[f] + jit[1], 0, None), rng.uniform(0, ih[bi] - bh)]
        pw = np.r_[np.maximum(w[f] + jit[2], 2), bw]
        ph = np.r_[np.maximum(h[f] + jit[3], 2), bh]
        pcat = np.r_[pc, rng.integers(1, N_CLASSES + 1, n_bg)]
        score = np.r_[rng.beta(5, 1.5, len(f)), rng.beta(1.2, 5, n_bg)].round(3)
        preds = [{"image_id": int(i), "category_id": int(c), "score": float(s),
                  "bbox": [round(a, 1), round(b, 1), round(cc, 1), round(d, 1)]}
                 for i, c, s, a, b, cc, d in zip(pimg.tolist(), pcat.tolist(), score.tolist(),
                                                 px.tolist(), py.tolist(), pw.tolist(),
                                                 ph.tolist())]
        (folder / "predictions").mkdir(exist_ok=True)
        (folder / "predictions" / "detector.json").write_text(json.dumps(preds))
    (folder / "DONE").write_text(json.dumps({"images": n_images, "objects": n}))
    return folder


def dataset_folder(base: Path, name: str, n_images: int, annotators, preds: float) -> Path:
    folder = base / f"{name}-{n_images}-{len(annotators)}-{preds:g}-s{SEED}"
    if not (folder / "DONE").exists():
        t = time.perf_counter()
        print(f"writing {name}: {n_images:,} images x {len(annotators)} annotator(s) "
              f"to {folder} ...", flush=True)
        write_dataset(folder, n_images, annotators, preds)
        print(f"  written in {time.perf_counter() - t:.0f} s", flush=True)
    return folder


# ------------------------------------------------------------------------------ measuring
def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def current_rss_gb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return float("nan")


_ACTIVE_PROFILE: list = []  # the cProfile.Profile of the step being measured, if any


def _profile_script_thread() -> None:
    """AppTest runs the script in a thread of its own, which a cProfile started in the main
    thread does not see: enable the active profile inside each script run instead."""
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    original = ScriptRunner._run_script

    def run_script(self, rerun_data):
        prof = _ACTIVE_PROFILE[0] if _ACTIVE_PROFILE else None
        if prof is None:
            return original(self, rerun_data)
        prof.enable()
        try:
            return original(self, rerun_data)
        finally:
            prof.disable()

    ScriptRunner._run_script = run_script


class Timer:
    def __init__(self, profile_dir: Path | None, label: str, slow_s: float):
        self.profile_dir, self.label, self.slow_s = profile_dir, label, slow_s

    def __call__(self, fn):
        prof = cProfile.Profile() if self.profile_dir else None
        _ACTIVE_PROFILE[:] = [prof]
        t, c = time.perf_counter(), time.process_time()
        try:
            out = fn()
        finally:
            _ACTIVE_PROFILE[:] = []
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        if prof and dt >= self.slow_s:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            prof.dump_stats(self.profile_dir / f"{self.label}.prof")
        return out, dt, cpu


def _problems(at) -> str | None:
    if at.exception:
        return "exception: " + str(at.exception[0].message)[:200]
    errors = [e.value for e in at.error]
    return ("error: " + str(errors[0])[:200]) if errors else None


def _set(at, kind: str, key: str, value):
    """Change widget ``key`` for the next run (through session state, which also works for
    widgets whose options are shown through a format_func); None when it is not shown."""
    if kind == "state":  # a tab: what a click on it does
        at.session_state[key] = value
        return at
    widgets = [w for w in getattr(at, kind) if w.key == key]
    if not widgets:
        return None
    w = widgets[0]
    if value is None and kind == "multiselect":  # the first option offered
        if not w.options:
            return None
        value = [w.options[0]]
    at.session_state[key] = value
    return at


def run_dataset(name: str, path: Path | None, pages: list[str], *, timeout: float,
                profile_dir: Path | None, workdir: Path, first_target: float,
                read_seconds: float = 0.0) -> list[dict]:
    """One AppTest session through ``pages``; one row per measured step."""
    from streamlit.testing.v1 import AppTest

    env = {"DATASET_QA_HOME": str(workdir / name / "home"),
           "DATASET_QA_CACHE": str(workdir / name / "cache"),
           "DATASET_QA_DB": f"sqlite:///{workdir / name / 'review.sqlite'}"}
    if path is not None:
        env["DATASET_QA_DATASET"] = str(path)
    else:
        os.environ.pop("DATASET_QA_DATASET", None)
    os.environ.update(env)
    rows = []
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)

    def step(label, what, fn, target, slow=2.0):
        _, dt, cpu = Timer(profile_dir, f"{name}-{label}-{what}".replace(" ", "_"), slow)(fn)
        row = {"dataset": name, "page": label, "step": what, "seconds": dt, "cpu": cpu,
               "target": target, "problem": _problems(at), "rss_gb": current_rss_gb(),
               "load": loadavg()}
        rows.append(row)
        print(f"  {label:<30} {what:<12} {dt:8.2f} s  cpu {cpu:7.2f} s  (target < {target:g} s)"
              f"  load {row['load']}{'  ' + row['problem'] if row['problem'] else ''}",
              flush=True)
        return row

    for page in pages:
        title, (kind, key, value) = PAGES[page]
        if page == "overview":
            step(title, "first visit", at.run, first_target)
        else:
            at.switch_page(f"pages/{page}.py")
            step(title, "first visit", at.run, first_target)
        if _set(at, kind, key, value) is None:
            rows.append({"dataset": name, "page": title, "step": "rerun", "seconds": None,
                         "cpu": None,
                         "target": RERUN_TARGET_S, "problem": f"no control {key} on the page",
                         "rss_gb": current_rss_gb(), "load": loadavg()})
            print(f"  {title:<30} rerun        (no control {key} shown)", flush=True)
        else:
            step(title, "rerun", at.run, RERUN_TARGET_S, slow=0.5)
        for what, (kind, key, value), target in EXTRA_STEPS.get(page, ()):
            if _set(at, kind, key, value) is not None:
                step(title, what, at.run,
                     first_target if target == FIRST_VISIT_TARGET_S else target, slow=0.5)
        if page == "review":
            _review_decisions(at, step)
        time.sleep(read_seconds)
    return rows


def _review_decisions(at, step) -> None:
    reviewer = [w for w in at.text_input if w.key == "qa_reviewer"]
    if not reviewer:
        return
    reviewer[0].set_value("bench")
    step("Review", "name typed", at.run, RERUN_TARGET_S, slow=0.5)
    for i in range(3):
        buttons = [b for b in at.button if b.key == "rv_do_confirmed"]
        if not buttons or buttons[0].disabled:
            return
        buttons[0].click()
        step("Review", f"decision {i + 1}", at.run, RERUN_TARGET_S, slow=0.5)


def baseline_seconds(path: Path) -> float:
    """Reading the labels with qa.load in this process: the yardstick for a busy machine."""
    import qa

    t = time.perf_counter()
    qa.load(path)
    return time.perf_counter() - t


def print_table(rows: list[dict], title: str, baseline: float | None) -> None:
    print(f"\n## {title}")
    if baseline is not None:
        print(f"baseline (qa.load of the labels, same process): {baseline:.2f} s")
    print("Wall seconds (CPU seconds of the process in brackets: on a shared machine the wall "
          "time includes waiting for a core; bold: over target)")
    print("| page | first visit | rerun | target first / rerun | load at first visit |")
    print("|---|---|---|---|---|")
    by_page: dict[str, dict] = {}
    for r in rows:
        by_page.setdefault(r["page"], {})[r["step"]] = r
    for page, steps in by_page.items():
        def cell(step):
            r = steps.get(step)
            if r is None or r["seconds"] is None:
                return "—"
            ok = "" if r["problem"] is None else " (!)"
            mark = "**" if r["seconds"] >= r["target"] else ""
            return f"{mark}{r['seconds']:.2f} s{mark} ({r['cpu']:.2f}){ok}"
        first = steps.get("first visit", {})
        extra = [s for s in steps if s not in ("first visit", "rerun")]
        print(f"| {page} | {cell('first visit')} | {cell('rerun')} | "
              f"< {first.get('target', 0):g} s / < {RERUN_TARGET_S:g} s | "
              f"{first.get('load', '')} |")
        for s in extra:
            print(f"| {page}: {s} | | {cell(s)} | < {steps[s]['target']:g} s | "
                  f"{steps[s]['load']} |")
    bad = [r for r in rows if r["seconds"] is not None and r["seconds"] >= r["target"]]
    problems = [r for r in rows if r["problem"]]
    print(f"{len(bad)} step(s) over target" + (": " + ", ".join(
        f"{r['page']} {r['step']}" for r in bad) if bad else ""))
    for r in problems:
        print(f"PROBLEM {r['page']} {r['step']}: {r['problem']}")


def _replace_opt(argv: list[str], opt: str, value: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == opt:
            skip = True
            continue
        if a.startswith(opt + "="):
            continue
        out.append(a)
    return out + [opt, value]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the full sizes (0.1: 5k x 3 and 11.8k images)")
    ap.add_argument("--datasets", default="multi,coco,sample",
                    help="comma-separated: multi (50k x 3 + predictions), coco (118k x 1), "
                         "sample (sample_data)")
    ap.add_argument("--pages", default=",".join(PAGES),
                    help=f"comma-separated subset of {','.join(PAGES)} (overview always runs "
                         "first: it loads the dataset)")
    ap.add_argument("--coco-predictions", type=float, default=PREDS_PER_IMAGE,
                    help="predictions per image of the COCO-size set (0: none)")
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "qa-bench-pages"),
                    help="where the synthetic datasets are written once and reused")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per script run, seconds")
    ap.add_argument("--profile", default=None,
                    help="folder for a cProfile (.prof) of every step slower than 2 s "
                         "(reruns: 0.5 s)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--read-seconds", type=float, default=0.0,
                    help="pause after each page, as a user reading it (the dashboard computes "
                         "the shared analyses in the background meanwhile); 0: click on at once")
    args = ap.parse_args(argv)

    import logging
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    pages = [p for p in args.pages.split(",") if p]
    unknown = [p for p in pages if p not in PAGES]
    if unknown:
        ap.error(f"unknown pages {unknown}; choose from {list(PAGES)}")
    pages = ["overview"] + [p for p in PAGES if p in pages and p != "overview"]
    datasets = [d for d in args.datasets.split(",") if d]
    if len(datasets) > 1:  # one process per dataset: each peak memory is its own
        import subprocess

        rc = 0
        for name in datasets:
            argv_one = [a for a in (argv if argv is not None else sys.argv[1:])]
            argv_one = _replace_opt(argv_one, "--datasets", name)
            rc |= subprocess.call([sys.executable, __file__, *argv_one])
        return rc
    base = Path(args.data_dir)
    workdir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    profile_dir = Path(args.profile) if args.profile else None
    if profile_dir:
        _profile_script_thread()
    name = datasets[0]
    if name == "multi":
        n = max(int(50_000 * args.scale), 10)
        path = dataset_folder(base, "multi", n, ANNOTATORS, PREDS_PER_IMAGE)
        title = f"{n:,} images x 3 annotators + predictions"
        target = FIRST_VISIT_TARGET_S
    elif name == "coco":
        n = max(int(118_287 * args.scale), 10)
        path = dataset_folder(base, "coco", n, ("annotator",), args.coco_predictions)
        title = f"COCO size: {n:,} images x 1 annotator" + (
            " + predictions" if args.coco_predictions else "")
        target = FIRST_VISIT_TARGET_S
    elif name == "sample":
        path, title, target = None, "sample_data (300 images)", SAMPLE_FIRST_VISIT_TARGET_S
    else:
        ap.error(f"unknown dataset {name!r}")
    print(f"\n# {title} (load {loadavg()}; {args.read_seconds:g} s of reading after each "
          "page)", flush=True)
    import shutil

    try:
        rows = run_dataset(name, path, pages, timeout=args.timeout, profile_dir=profile_dir,
                           workdir=workdir, first_target=target,
                           read_seconds=args.read_seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base_s = baseline_seconds(path if path is not None else ROOT / "sample_data")
    print_table(rows, title, base_s)
    peak = peak_rss_gb()
    print(f"peak memory of this process (the app server's, one session): {peak:.2f} GB "
          f"(target < {MEMORY_TARGET_GB:g} GB at 50k x 3); load after: {loadavg()}", flush=True)
    if args.json:
        out = Path(args.json)
        out = out.with_name(f"{out.stem}-{name}{out.suffix}")
        out.write_text(json.dumps({"dataset": name, "title": title, "rows": rows,
                                   "baseline_s": base_s, "peak_rss_gb": peak}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
