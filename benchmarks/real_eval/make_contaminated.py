"""Build the contaminated evaluation sets for outliers: a real dataset with real photos of
other real datasets mixed in (another subject), plus a few frames made from the set's own
photos that stand for capture artifacts (a black frame, a washed-out frame, a blank grey
frame, a frame whose lower part did not decode). The truth is in the file name:
``contam-<source>-...`` is another subject, ``artifact-<kind>-...`` an artifact; every other
image belongs to the set (and is judged by eye when the tool flags it, in outliers.csv).

Run: ``python benchmarks/real_eval/make_contaminated.py [--data DIR] [--out DIR]``
(``--data``: the folder holding ``chess/`` and ``ricepest/``, default /work/data/real;
``--out``: default DATA/contam). Deterministic (seeded); the datasets themselves are copied,
never modified. Sets: ``bccd-mix`` (VOC), ``ricepest-mix`` and ``chess-mix`` (YOLO).

For the quality recall check the same script builds ``<set>-defects``: the set with
N_DEFECTS of its own photos copied three times, underexposed by 3 stops, overexposed by 2
stops (in linear light, clipped) and defocused (Gaussian blur, sigma 3 px at 640 px), each
copy with the original's labels and named ``defect-<dark|bright|blur>-...`` (synthetic
defects on real photos: a recall check, not judged real ones).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 26
N_PER_SOURCE = 7  # photos from each of the three other sources: 21 per set
ARTIFACTS = ("black", "washed", "blank", "truncated")


def _realdata() -> Path:
    env = os.environ.get("QA_REALDATA")
    if env:
        return Path(env)
    rel = Path(__file__).resolve().parents[3] / "shared" / "realdata"
    return rel if rel.exists() else Path("/work/shared/realdata")


def _stem(name: str) -> str:
    return re.sub(r"_(jpe?g|png|bmp)\.rf\.[0-9a-f]+$", "", Path(name).stem, flags=re.I)


def sources(data: Path) -> dict[str, list[Path]]:
    """Candidate photos per source (for Roboflow exports one file per source photo)."""
    real = _realdata()

    def one_per_stem(paths):
        seen, out = set(), []
        for p in sorted(paths):
            if _stem(p.name) not in seen:
                seen.add(_stem(p.name))
                out.append(p)
        return out

    return {"bccd": sorted((real / "bccd" / "JPEGImages").glob("*.jpg")),
            "raccoon": sorted((real / "raccoon" / "images").glob("*.jpg")),
            "chess": one_per_stem((data / "chess").glob("*/images/*.jpg")),
            "ricepest": one_per_stem((data / "ricepest").glob("*/images/*.jpg"))}


def artifact(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(img.convert("RGB")).astype(np.float32)
    if kind == "black":  # lens cap on / shutter misfire: a faint trace of the scene in noise
        a = a * 0.04 + rng.normal(0, 1.5, a.shape)
    elif kind == "washed":  # flash into the lens: everything near white
        a = 255 - (255 - a) * 0.06
    elif kind == "blank":  # an empty grey frame (sensor read-out with nothing in it)
        a = np.full_like(a, 128.0) + rng.normal(0, 2.0, a.shape)
    elif kind == "truncated":  # a partly written JPEG: the lower part decodes grey
        a[int(a.shape[0] * 0.4):] = 128.0
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


N_DEFECTS = 10
DEFECTS = ("dark", "bright", "blur")


def defect(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    from PIL import ImageFilter

    if kind == "blur":
        return img.convert("RGB").filter(ImageFilter.GaussianBlur(3 * max(img.size) / 640))
    a = np.asarray(img.convert("RGB")).astype(np.float32) / 255
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    lin = np.clip(lin * (1 / 8 if kind == "dark" else 4.0), 0, 1)
    a = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055) * 255
    a = a + rng.normal(0, 1.0, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def build_defects(base: str, base_dir: Path, out: Path) -> list[str]:
    """Copy ``base_dir`` to ``out`` and add N_DEFECTS photos x DEFECTS, labels copied."""
    rng = random.Random(f"{SEED}-{base}-defects")
    nrng = np.random.default_rng(SEED)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base_dir, out)
    voc = (out / "Annotations").is_dir()
    if voc:
        imgs = sorted((out / "JPEGImages").glob("*.jpg"))
    else:
        seen, imgs = set(), []
        for p in sorted(out.glob("*/images/*.jpg")):
            if _stem(p.name) not in seen:
                seen.add(_stem(p.name))
                imgs.append(p)
    names = []
    for p in rng.sample(imgs, N_DEFECTS):
        for kind in DEFECTS:
            name = f"defect-{kind}-{_stem(p.name)}"
            defect(Image.open(p), kind, nrng).save(p.parent / f"{name}.jpg", quality=92)
            names.append(name)
            if voc:
                xml = (out / "Annotations" / f"{p.stem}.xml").read_text()
                xml = xml.replace(p.name, f"{name}.jpg")
                (out / "Annotations" / f"{name}.xml").write_text(xml)
            else:
                lab = p.parent.parent / "labels" / f"{p.stem}.txt"
                if lab.exists():
                    shutil.copy(lab, lab.parent / f"{name}.txt")
    if voc:
        main = out / "ImageSets" / "Main"
        for f in ("train.txt", "trainval.txt"):
            with (main / f).open("a") as fh:
                fh.write("".join(f"{n}\n" for n in names))
    return names


def _voc_xml(name: str, w: int, h: int) -> str:
    return (f"<annotation><folder>JPEGImages</folder><filename>{name}</filename>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"
            "<segmented>0</segmented></annotation>\n")


def build(base: str, base_dir: Path, out: Path, pool: dict[str, list[Path]]) -> list[str]:
    """Copy ``base_dir`` to ``out`` and add the contaminants; returns their file names."""
    rng = random.Random(f"{SEED}-{base}")
    nrng = np.random.default_rng(SEED)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base_dir, out)
    voc = (out / "Annotations").is_dir()
    img_dir = out / ("JPEGImages" if voc else "train/images")
    picks = []
    for src, files in pool.items():
        if src == base.split("-")[0]:
            continue
        for p in rng.sample(files, N_PER_SOURCE):
            picks.append((f"contam-{src}-{_stem(p.name)}.jpg", Image.open(p)))
    own = pool[base.split("-")[0]]
    for kind, p in zip(ARTIFACTS, rng.sample(own, len(ARTIFACTS))):
        picks.append((f"artifact-{kind}-{_stem(p.name)}.jpg", artifact(Image.open(p), kind,
                                                                        nrng)))
    names = []
    for name, im in picks:
        im.convert("RGB").save(img_dir / name, quality=92)
        names.append(name)
        if voc:
            (out / "Annotations" / f"{Path(name).stem}.xml").write_text(
                _voc_xml(name, *im.size))
    if voc:
        main = out / "ImageSets" / "Main"
        for f in ("train.txt", "trainval.txt"):
            with (main / f).open("a") as fh:
                fh.write("".join(f"{Path(n).stem}\n" for n in names))
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/data/real"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or args.data / "contam"
    out.mkdir(parents=True, exist_ok=True)
    pool = sources(args.data)
    bases = {"bccd-mix": _realdata() / "bccd", "ricepest-mix": args.data / "ricepest",
             "chess-mix": args.data / "chess"}
    for name, d in bases.items():
        names = build(name, d, out / name, pool)
        print(f"{name}: {len(names)} added to {out / name}")
        dname = name.replace("-mix", "-defects")
        names = build_defects(dname, d, out / dname)
        print(f"{dname}: {len(names)} added to {out / dname}")


if __name__ == "__main__":
    main()
