"""Tests of qa.paths and qa.images: confinement to the root (names, symlinked files and
folders), EXIF orientation, decompression bombs, damaged files, and the bounded ordered pool."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from qa.images import (
    MAX_PIXELS,
    NOT_FOUND,
    OUTSIDE_ROOT,
    decode,
    iter_images,
    read_header,
    read_image,
    sha256_file,
)
from qa.paths import OutsideRootError, lexically_inside, open_inside, resolve_inside
from tests.conftest import write_jpeg


@pytest.fixture
def layout(tmp_path):
    """root/ with a.jpg and sub/b.jpg; outside/ beside it with secret.jpg; links inside root
    to the outside file and to the outside folder."""
    root, out = tmp_path / "root", tmp_path / "outside"
    write_jpeg(root / "a.jpg", seed=1)
    write_jpeg(root / "sub" / "b.jpg", seed=2)
    write_jpeg(out / "secret.jpg", seed=3)
    os.symlink(out / "secret.jpg", root / "link.jpg")
    os.symlink(out, root / "linked_dir")
    os.symlink(root / "a.jpg", root / "alias.jpg")  # a link that stays inside is fine
    return root


def test_lexical_and_resolved_rules(layout):
    root = layout.resolve()
    assert lexically_inside(root, "sub/b.jpg") == root / "sub" / "b.jpg"
    assert lexically_inside(root, "../outside/secret.jpg") is None
    assert lexically_inside(root, "/etc/passwd") is None
    assert lexically_inside(root, "a\x00.jpg") is None
    assert resolve_inside(root, "sub/../a.jpg") == root / "a.jpg"
    assert resolve_inside(root, "link.jpg") is None
    assert resolve_inside(root, "linked_dir/secret.jpg") is None  # a linked folder, too
    assert resolve_inside(root, "alias.jpg") == root / "a.jpg"


@pytest.mark.parametrize("name", ["link.jpg", "linked_dir/secret.jpg", "../outside/secret.jpg",
                                  "/etc/hostname"])
def test_open_inside_refuses_every_escape(layout, name):
    with pytest.raises(OutsideRootError):
        open_inside(layout, name)
    res = read_image(layout, name)
    assert not res.ok and "outside the dataset root" in res.error
    exists, readable, w, h, err = read_header(layout, name)
    assert not readable and w is None and "outside the dataset root" in err


def test_links_out_and_fifos_are_never_opened(layout, tmp_path, monkeypatch):
    """A FIFO (or a link to one outside the root) named like an image is refused from its real
    path before any open: opening a FIFO would block until a writer comes."""
    import builtins

    from qa.images import LINK_OUTSIDE, NOT_REGULAR

    os.mkfifo(layout / "pipe.jpg")
    os.mkfifo(tmp_path / "outside" / "pipe.jpg")
    os.symlink(tmp_path / "outside" / "pipe.jpg", layout / "out_pipe.jpg")
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: opened.append(str(p)) or
                        pytest.fail(f"builtins.open({p})"))
    t0 = time.monotonic()
    assert read_header(layout, "out_pipe.jpg")[4] == LINK_OUTSIDE
    assert read_image(layout, "out_pipe.jpg").error == LINK_OUTSIDE
    assert read_header(layout, "pipe.jpg")[:2] == (True, False)
    assert read_image(layout, "pipe.jpg").error == NOT_REGULAR
    assert read_header(layout, "link.jpg")[4] == LINK_OUTSIDE
    assert time.monotonic() - t0 < 5 and opened == []  # nothing was opened, nothing blocked
    assert read_header(layout, "a.jpg")[1] and opened == [str(layout / "a.jpg")]


def test_reads_inside_and_through_inner_links(layout):
    with open_inside(layout, "alias.jpg") as f:
        assert f.read(2) == b"\xff\xd8"
    res = read_image(layout, "sub/b.jpg", with_sha256=True)
    assert res.ok and res.image.mode == "RGB" and res.size == (64, 48)
    assert res.sha256 == hashlib.sha256((layout / "sub" / "b.jpg").read_bytes()).hexdigest()
    assert sha256_file(layout, "sub/b.jpg") == res.sha256
    assert read_header(layout, "a.jpg") == (True, True, 64, 48, None)


def test_missing_damaged_truncated(tmp_path):
    assert read_image(tmp_path, "nope.jpg").error == NOT_FOUND
    assert read_header(tmp_path, "nope.jpg")[:2] == (False, False)
    (tmp_path / "junk.jpg").write_bytes(b"hello, not a picture")
    err = read_image(tmp_path, "junk.jpg").error
    assert err.startswith("not a readable image") and "0x" not in err
    full = write_jpeg(tmp_path / "full.jpg", size=(200, 150)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) // 2])
    assert read_image(tmp_path, "cut.jpg").error == "not a readable image (the file is cut short)"
    (tmp_path / "dir.jpg").mkdir()
    assert not read_image(tmp_path, "dir.jpg").ok
    assert read_image(None, "a.jpg").error and not read_image(None, "a.jpg").ok
    assert read_image(tmp_path, "../x.jpg").error == OUTSIDE_ROOT


def test_decompression_bomb_refused_before_decoding(tmp_path):
    # a 1-bit PNG whose header says 12000 x 9000 (108 MP): tiny on disk
    Image.new("1", (12000, 9000)).save(tmp_path / "bomb.png", optimize=True)
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    t = time.perf_counter()
    res = read_image(tmp_path, "bomb.png")
    assert not res.ok and "too large" in res.error and "108 MP" in res.error
    assert time.perf_counter() - t < 1.0
    assert 12000 * 9000 > MAX_PIXELS
    ok = read_image(tmp_path, "bomb.png", max_pixels=200_000_000, mode="L")
    assert ok.ok and ok.size == (12000, 9000)


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :40] = (255, 0, 0)  # left half red on an 80 x 40 stored image
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored rotated: display is 90 degrees clockwise
    im.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    res = read_image(tmp_path, "r.jpg")
    assert res.size == (40, 80) and res.image.size == (40, 80)
    top = np.asarray(res.image)[:10].mean(axis=(0, 1))
    assert top[0] > 200 and top[1] < 60  # the red half is now on top
    assert read_header(tmp_path, "r.jpg")[2:4] == (80, 40)  # header: stored size


def test_transparent_png_on_white_and_draft(tmp_path):
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert np.asarray(read_image(tmp_path, "t.png").image).min() == 255
    write_jpeg(tmp_path / "big.jpg", size=(1600, 1200))
    data = (tmp_path / "big.jpg").read_bytes()
    im, size = decode(data, max_side=200)
    assert size == (1600, 1200) and 200 <= max(im.size) < 1600  # decoded at a reduced scale


def test_iter_images_ordered_and_bounded():
    started, lock = [0], threading.Lock()

    def work(i):
        with lock:
            started[0] += 1
        time.sleep(0.001 * (i % 3))
        return i

    progress, ahead = [], []
    for k, r in enumerate(iter_images(range(200), work, workers=4,
                                      progress=lambda d, t: progress.append((d, t)), total=200)):
        assert r == k  # input order, whatever order the threads finish in
        with lock:
            ahead.append(started[0] - k)
    assert progress[-1] == (200, 200) and len(progress) == 200
    assert max(ahead) <= 4 * 4 + 1  # the window: never more results computed ahead
    assert list(iter_images(range(50), lambda i: i * 2, workers=3)) == [2 * i for i in range(50)]
