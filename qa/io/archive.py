"""Safe extraction of an uploaded dataset archive (.zip) into a fresh temporary folder."""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from qa.dataset import DatasetError

# Limits for uploads: a 2 GiB unpacked dataset is plenty for a browser upload, and the member
# cap and ratio stop zip bombs (a 100:1 ratio is far beyond what JPEG/JSON datasets compress).
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_MEMBERS = 200_000
MAX_RATIO = 100


def _safe_member(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name.replace("\\", "/"))
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
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"the upload is not a readable .zip archive ({exc}); zip the dataset "
                           "folder and upload it again.") from None
    with zf:
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
                    and info.file_size > 10 * 1024**2:
                raise DatasetError(f"the archive entry '{info.filename}' expands "
                                   f"{info.file_size / info.compress_size:.0f}x; refusing a "
                                   "possible zip bomb.")
        if total > max_bytes:
            raise DatasetError(f"the archive unpacks to {total / 1024**2:.0f} MiB, over the "
                               f"{max_bytes / 1024**2:.0f} MiB limit; load the folder by path.")
        out = Path(tempfile.mkdtemp(prefix="dataset-qa-upload-", dir=dest_parent))
        try:
            written = 0
            for info in infos:
                target = out.joinpath(*_safe_member(info.filename).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > max_bytes:  # sizes in headers can lie
                            raise DatasetError("the archive unpacks to more than the "
                                               f"{max_bytes / 1024**2:.0f} MiB limit.")
                        dst.write(chunk)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
    entries = [p for p in out.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else out
