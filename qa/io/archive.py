"""Safe extraction of an uploaded dataset archive (.zip) into a fresh temporary folder, and
the clean-up of those folders (:func:`remove_extraction`, :func:`remove_stale_extractions`)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from qa.dataset import DatasetError

log = logging.getLogger(__name__)

# Limits for uploads: a 2 GiB unpacked dataset is plenty for a browser upload, and the member
# cap and ratio stop zip bombs (a 100:1 ratio is far beyond what JPEG/JSON datasets compress).
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_MEMBERS = 200_000
MAX_RATIO = 100
# The ratio is also checked over the whole archive once it unpacks to more than this: many
# mid-sized entries of zeros (30 x 10 MiB) pass a per-entry check, not a total one.
MIN_BYTES_FOR_RATIO = 10 * 1024**2
PREFIX = "dataset-qa-upload-"
# Written into each extraction folder: the id of the server process that owns it, so a later
# start-up can tell a left-over folder (its process is gone) from one in use.
OWNER_FILE = ".dataset-qa-owner"
# Extraction folders with no owner file are removed at start-up once older than this.
STALE_AFTER_S = 24 * 3600
# What zipfile and zlib raise for encrypted, Deflate64, CRC-corrupt or lying archives.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError,
               EOFError, OSError, ValueError, zlib.error, struct.error, IndexError, KeyError)


def _safe_member(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if not p.parts or name.endswith("\x00"):  # an empty or '.' name: nowhere to write it
        return None
    if p.is_absolute() or any(part in ("..", "") for part in p.parts[:-1]) or ".." in p.parts:
        return None
    if p.parts and ":" in p.parts[0]:  # C:/... drive letters
        return None
    return p


def extract_zip(source, *, dest_parent: Path | str | None = None,
                max_bytes: int = MAX_UNPACKED_BYTES) -> Path:
    """Extract ``source`` (a path or a binary file object) into a new temporary folder and
    return the dataset folder inside it (the single top-level folder if there is one).

    Refuses — with :class:`DatasetError`, before writing anything — members that would land
    outside the folder (``..``, absolute paths), symlinks, more than ``MAX_MEMBERS`` entries,
    more than ``max_bytes`` unpacked, or a suspicious compression ratio.
    """
    try:
        zf = zipfile.ZipFile(source)
    except _ZIP_ERRORS as exc:
        raise DatasetError(f"the upload is not a readable .zip archive ({exc}); zip the dataset "
                           "folder and upload it again.") from None
    try:
        with zf:
            return _extract(zf, dest_parent=dest_parent, max_bytes=max_bytes)
    except DatasetError:
        raise
    except _ZIP_ERRORS as exc:
        raise DatasetError(_zip_problem(exc)) from None


def _zip_problem(exc: BaseException) -> str:
    text = str(exc)
    if "encrypted" in text or "password" in text:
        why = "it is encrypted (password-protected)"
    elif isinstance(exc, NotImplementedError) or "compression method" in text:
        why = f"it uses a compression method Python cannot read ({text})"
    elif "CRC" in text or "Bad magic" in text or isinstance(exc, (EOFError, zlib.error)):
        why = f"it is damaged ({text})"
    else:
        why = f"it cannot be read ({type(exc).__name__}: {text})"
    return (f"the upload could not be extracted: {why}. Nothing was kept. Re-create the zip "
            "without a password, with the standard Deflate method (e.g. 'zip -r ds.zip ds/').")


def _extract(zf: zipfile.ZipFile, *, dest_parent, max_bytes: int) -> Path:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DatasetError(f"the archive has {len(infos)} entries (limit {MAX_MEMBERS}).")
    total = 0
    for info in infos:
        if _safe_member(info.filename) is None:
            raise DatasetError(f"the archive entry '{info.filename}' would be written outside "
                               "the extraction folder; nothing was extracted. Re-create the "
                               "zip with relative paths.")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DatasetError(f"the archive entry '{info.filename}' is a symbolic link; "
                               "links are not extracted. Zip the real files.")
        total += info.file_size
        if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_RATIO \
                and info.file_size > MIN_BYTES_FOR_RATIO:
            raise DatasetError(f"the archive entry '{info.filename}' expands "
                               f"{info.file_size / info.compress_size:.0f}x; refusing a "
                               "possible zip bomb.")
    if total > max_bytes:
        raise DatasetError(f"the archive unpacks to {total / 1024**2:.0f} MiB, over the "
                           f"{max_bytes / 1024**2:.0f} MiB limit; load the folder by path.")
    packed = sum(i.compress_size for i in infos)
    if total > MIN_BYTES_FOR_RATIO and total / max(packed, 1) > MAX_RATIO:
        raise DatasetError(f"the archive expands {total / max(packed, 1):.0f}x overall "
                           f"({packed / 1024**2:.1f} MiB to {total / 1024**2:.0f} MiB; "
                           f"limit {MAX_RATIO}x); refusing a possible zip bomb.")
    out = Path(tempfile.mkdtemp(prefix=PREFIX, dir=dest_parent))
    try:
        (out / OWNER_FILE).write_text(str(os.getpid()))
        written = 0
        for info in infos:
            target = out.joinpath(*_safe_member(info.filename).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                n = 0
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    n += len(chunk)
                    if written > max_bytes:  # sizes in headers can lie
                        raise DatasetError("the archive unpacks to more than the "
                                           f"{max_bytes / 1024**2:.0f} MiB limit.")
                    if n > info.file_size:
                        raise DatasetError(
                            f"the archive entry '{info.filename}' unpacks to more than the "
                            f"{info.file_size} bytes its header declares; the archive is "
                            "damaged or forged. Nothing was kept.")
                    dst.write(chunk)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    entries = [p for p in out.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else out


def extraction_folder(path: Path | str) -> Path | None:
    """The extraction folder (made by :func:`extract_zip`) that holds ``path``, or None."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.name.startswith(PREFIX) and (q / OWNER_FILE).is_file():
            return q
    return None


def remove_extraction(path: Path | str) -> bool:
    """Delete the extraction folder holding ``path`` (what :func:`extract_zip` returned);
    True if one was removed. Never touches a folder it did not make."""
    folder = extraction_folder(path)
    if folder is None:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_extractions(parent: Path | str | None = None) -> list[Path]:
    """Remove extraction folders left in ``parent`` (default: the temp dir) by server
    processes that are gone (or, with no owner file, older than ``STALE_AFTER_S``); return
    them. Called once when the app starts."""
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    removed = []
    try:
        candidates = [d for d in base.iterdir() if d.name.startswith(PREFIX) and d.is_dir()
                      and not d.is_symlink()]
    except OSError:
        return removed
    for d in candidates:
        try:
            owner = d / OWNER_FILE
            if owner.is_file():
                text = owner.read_text().strip()
                stale = not (text.isdigit() and _alive(int(text)))
            else:
                stale = time.time() - d.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    if removed:
        log.info("removed %d stale upload extraction(s) from %s", len(removed), base)
    return removed
