"""The one place that opens image files.

Every pixel or header that dataset-qa reads goes through here: thumbnails, the header probe,
embeddings, hashes and pixel statistics. It

* confines reads to the dataset root (:func:`qa.paths.open_inside`: ``..``, absolute names and
  symlinks, linked folders included, that lead outside are refused before anything is opened,
  and so is whatever is not a regular file: a FIFO or a device named like an image);
* applies the EXIF orientation and converts to RGB;
* refuses decompression bombs with a clear per-image reason (:data:`MAX_PIXELS`), instead of
  PIL's warning or a crash;
* decodes JPEGs at reduced size when the caller only needs ``max_side`` pixels (draft mode);
* reads many images in parallel with a bounded pool, in order (:func:`iter_images`).

Nothing here raises for a bad image: the result carries ``error``, a reason in words
("file not found", "not a readable image (truncated JPEG)", "outside the dataset root" ...).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from qa.paths import OutsideRootError, open_inside

log = logging.getLogger(__name__)

# Largest image decoded, in pixels: 100 MP (e.g. 12000 x 8300) covers drone and satellite
# tiles, while one decoded RGB copy stays under 300 MB. PIL's own guard only warns at 89 MP
# and raises at 179 MP, after allocating; here a bigger header is refused before decoding.
MAX_PIXELS = 100_000_000
# Decoding releases the GIL in Pillow, so threads overlap disk and decode on few cores; the
# pool holds at most IN_FLIGHT_PER_WORKER results per worker so memory stays bounded.
DEFAULT_WORKERS = min(8, (os.cpu_count() or 2) * 2)
IN_FLIGHT_PER_WORKER = 4
_HASH_CHUNK = 1 << 20

T = TypeVar("T")

# Reasons, in words, shared by every caller (pages, validation, embeddings, hashing).
NOT_FOUND = "file not found"
OUTSIDE_ROOT = "outside the dataset root"
NO_ROOT = "the dataset has no image folder"
LINK_OUTSIDE = "symbolic link pointing outside the dataset root"
NOT_REGULAR = "not a regular file (a pipe, socket or device); never opened"


@dataclass(frozen=True)
class ImageRead:
    """One image read from disk. ``image`` is an RGB PIL image (reduced when ``max_side`` was
    given), or None with ``error`` saying why. ``size`` is the full (width, height) after EXIF
    orientation; ``sha256`` the hex digest of the file's bytes when asked for."""

    file_name: str
    image: "object | None" = None  # PIL.Image.Image
    size: tuple[int, int] | None = None
    sha256: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.image is not None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OutsideRootError):
        return OUTSIDE_ROOT if "symbolic link" not in str(exc) else LINK_OUTSIDE
    if isinstance(exc, FileNotFoundError):
        return NOT_FOUND
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and "not a regular file" in str(exc):
        return NOT_REGULAR
    if isinstance(exc, ImageTooLarge):
        return str(exc)
    from PIL import UnidentifiedImageError

    text = str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (unknown format or damaged header)"
    if "truncated" in text.lower() or "premature end" in text.lower():
        return "not a readable image (the file is cut short)"
    text = text.split(" at 0x")[0][:120]  # no object addresses in a user's message
    name = type(exc).__name__
    return f"not a readable image ({name}: {text})" if text else f"not a readable image ({name})"


class ImageTooLarge(ValueError):
    """The header announces more pixels than :data:`MAX_PIXELS`."""


def read_bytes(root: Path | str, file_name: str, *, real_root: Path | None = None) -> bytes:
    """The bytes of ``root / file_name`` (confined to the root; raises OSError subclasses)."""
    with open_inside(root, file_name, real_root=real_root) as f:
        return f.read()


def sha256_file(root: Path | str, file_name: str, *, real_root: Path | None = None) -> str:
    """SHA-256 hex digest of the file's bytes, read in chunks (confined to the root)."""
    h = hashlib.sha256()
    with open_inside(root, file_name, real_root=real_root) as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def decode(data: bytes, *, max_side: int | None = None, max_pixels: int = MAX_PIXELS,
           mode: str = "RGB"):
    """Decode image bytes: (PIL image in ``mode`` with EXIF orientation applied, full size
    (w, h) after orientation). ``max_side`` lets JPEGs decode at a reduced scale (the result
    is at least ``max_side`` on its long side, not resized further). Raises
    :class:`ImageTooLarge`, or PIL/OSError for files that are not images."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        # our own cap below decides, with a message in words; PIL's hard limit (2x its warning
        # size) still stops a header it would refuse anyway
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"image too large to decode ({str(exc).split('(')[1].split(')')[0]}"
                                f", limit {max_pixels / 1e6:.0f} MP)") from None
        w, h = im.size
        if w * h > max_pixels:
            raise ImageTooLarge(f"image too large to decode ({w} x {h} = {w * h / 1e6:.0f} MP, "
                                f"limit {max_pixels / 1e6:.0f} MP)")
        orientation = _exif_orientation(im)
        if max_side and im.format == "JPEG":
            im.draft(mode if mode in ("RGB", "L") else "RGB", (max_side, max_side))
        im.load()
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        if orientation and orientation != 1:
            im = ImageOps.exif_transpose(im)
        if im.mode != mode:
            im = _to_mode(im, mode)
    return im, (int(w), int(h))


def _exif_orientation(im) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not make the picture unreadable
        return None


def _to_mode(im, mode: str):
    """Convert, compositing transparency on white (a transparent PNG is not a black image)."""
    from PIL import Image

    if mode == "RGB" and (im.mode in ("RGBA", "LA") or "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert(mode)


def read_image(root: Path | str | None, file_name: str, *, max_side: int | None = None,
               with_sha256: bool = False, max_pixels: int = MAX_PIXELS, mode: str = "RGB",
               real_root: Path | None = None) -> ImageRead:
    """Read and decode one image; never raises (see :class:`ImageRead`)."""
    name = str(file_name)
    if root is None:
        return ImageRead(name, error=NO_ROOT)
    try:
        data = read_bytes(root, name, real_root=real_root)
    except Exception as exc:
        return ImageRead(name, error=_reason(exc))
    digest = hashlib.sha256(data).hexdigest() if with_sha256 else None
    try:
        im, size = decode(data, max_side=max_side, max_pixels=max_pixels, mode=mode)
    except Exception as exc:  # PIL raises many types on damaged files: never crash a caller
        return ImageRead(name, sha256=digest, error=_reason(exc))
    return ImageRead(name, image=im, size=size, sha256=digest)


def read_header(root: Path | str | None, file_name: str, *, verify: bool = True,
                real_root: Path | None = None) -> tuple[bool, bool, int | None, int | None,
                                                        str | None]:
    """(exists, readable, width, height, error) from the file's header, without decoding the
    pixels; ``verify`` checks the structure too (PIL's ``verify``). Width and height are as
    stored (before EXIF orientation), as labelling tools and COCO files give them."""
    from PIL import Image

    if root is None:
        return False, False, None, None, NO_ROOT
    try:
        f = open_inside(root, str(file_name), real_root=real_root)
    except OutsideRootError as exc:
        return "symbolic link" in str(exc), False, None, None, _reason(exc)
    except Exception as exc:
        return not isinstance(exc, FileNotFoundError), False, None, None, _reason(exc)
    with f:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(f) as im:
                    w, h = im.size
                    fmt = im.format
                    if verify:
                        im.verify()
            if verify and not _complete(f, fmt):
                return True, False, int(w), int(h), TRUNCATED
            return True, True, int(w), int(h), None
        except Exception as exc:  # PIL raises odd types on fuzzed files; never crash a load
            return True, False, None, None, _reason(exc)


# The end markers of the two commonest formats: a JPEG ends with EOI (FF D9), a PNG with its
# IEND chunk. A file cut short, the commonest real corruption, lacks them. PIL's verify()
# reads only the headers, so this is the check that finds it.
_TAIL_BYTES = 1024
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND"
TRUNCATED = "not a readable image (the file is cut short)"


def _complete(f, fmt: str | None) -> bool:
    """Whether a JPEG or PNG file is whole: its end marker is in the last bytes (padding
    allowed). Without one (a cut file, or data appended after the image), decide by decoding
    the whole file once; other formats are taken as whole."""
    if fmt not in ("JPEG", "PNG"):
        return True
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _TAIL_BYTES))
    tail = f.read()
    if fmt == "JPEG" and tail.rstrip(b"\x00\r\n\t ").endswith(_JPEG_EOI):
        return True
    if fmt == "PNG" and _PNG_IEND in tail:
        return True
    f.seek(0)
    try:
        from PIL import ImageFile

        if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone relaxed PIL globally: check the marker
            return False
        decode(f.read())
    except Exception:  # the decoder says how it is damaged; all of it means "not whole"
        return False
    return True


def iter_images(items: Iterable[T], fn: Callable[[T], object], *,
                workers: int = DEFAULT_WORKERS,
                progress: Callable[[int, int], None] | None = None,
                total: int | None = None) -> Iterator[object]:
    """``fn(item)`` for every item, computed by a thread pool, yielded in input order.

    At most ``workers * IN_FLIGHT_PER_WORKER`` results wait in memory, so a million images
    stream through in constant memory. ``progress(done, total)`` is called as results come
    out. Use with :func:`read_image` (``fn=lambda name: read_image(root, name, ...)``)."""
    items = iter(items)
    window = max(1, workers * IN_FLIGHT_PER_WORKER)
    done = 0

    def take(pending):
        nonlocal done
        result = pending.popleft().result()
        done += 1
        if progress is not None and total:
            progress(done, total)  # before the yield: a consumer that stops early still saw it
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="qa-images") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield take(pending)
        while pending:
            yield take(pending)
