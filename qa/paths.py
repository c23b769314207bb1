"""Path confinement: a dataset's files are read only from inside its root.

Three rules, shared by every reader, the image reader and the app:

* :func:`lexically_inside`: ``root / name`` normalised without touching the disk; ``..`` or an
  absolute path that leaves the root gives None (cheap: used to list 1M names).
* :func:`resolve_inside`: the same with symlinks followed (``realpath``): a link, or a linked
  *folder* on the way, that points outside the root gives None.
* :func:`open_inside`: opens the file and then checks the path the kernel actually opened
  (``/proc/self/fd``), so no symlink swapped in between the check and the open can escape.

The one rule every reader follows (folders, files and listings alike): **a path whose real
location (symlinks followed) lies outside the dataset root is never opened or listed.** An image
named by the labels that breaks it is reported as ``unsafe_path``; a labels-side file or folder
that breaks it is skipped with a load issue. :func:`is_within` is that test.

For an upload, the whole load is also confined to the extraction folder (:func:`confined_to`):
the dataset root, a YOLO ``path:``, split entries and any root guess must stay inside it
(:func:`boundary` tells the readers which folder that is).

This module imports nothing from the rest of qa, so :mod:`qa.dataset` and :mod:`qa.io` can both
use it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path

_PROC_FD = Path("/proc/self/fd")


class OutsideRootError(PermissionError):
    """A file that resolves outside the dataset root: it is never read."""


def _real_root(root: Path | str) -> Path:
    return Path(os.path.realpath(root))


def is_inside(root: Path, path: Path) -> bool:
    """True when ``path`` is ``root`` or below it (both already normalised/resolved)."""
    return path == root or root in path.parents


def is_within(root: Path | str, path: Path | str) -> bool:
    """True when ``path``'s real location (symlinks and linked folders followed) is ``root``'s
    real location or below it. A path that cannot be resolved (too long, a loop) is not."""
    try:
        return is_inside(_real_root(root), Path(os.path.realpath(path)))
    except (OSError, ValueError):
        return False


def within_checker(root: Path | str):
    """A fast :func:`is_within` for many files under few folders: each folder's real
    location is resolved once; a file costs one ``lstat`` (a symlinked file is resolved)."""
    rroot = _real_root(root)
    folders: dict[Path, bool] = {}

    def check(path: Path | str) -> bool:
        p = Path(path)
        ok = folders.get(p.parent)
        if ok is None:
            ok = folders[p.parent] = is_within(rroot, p.parent)
        try:
            return ok and (not p.is_symlink() or is_within(rroot, p))
        except (OSError, ValueError):
            return False

    return check


_BOUNDARY: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "dataset_qa_boundary", default=None)


@contextlib.contextmanager
def confined_to(folder: Path | str | None):
    """Within this block, every dataset root a reader picks must lie inside ``folder`` (an
    upload's extraction folder); ``None`` sets no boundary (a local dataset)."""
    token = _BOUNDARY.set(None if folder is None else _real_root(folder))
    try:
        yield
    finally:
        _BOUNDARY.reset(token)


def boundary() -> Path | None:
    """The folder the current load is confined to (see :func:`confined_to`), or None."""
    return _BOUNDARY.get()


def within_boundary(path: Path | str) -> bool:
    """True when there is no boundary or ``path`` lies inside it (symlinks followed)."""
    b = _BOUNDARY.get()
    return b is None or is_within(b, path)


def lexically_inside(root: Path | str, file_name: str) -> Path | None:
    """``root / file_name`` normalised without touching the disk, or None if ``..`` or an
    absolute path takes it out of ``root`` (pass a resolved ``root``). Symlinks are checked
    when the file is opened (:func:`open_inside`)."""
    if not file_name or "\x00" in str(file_name):
        return None
    # strings, not Path.parents: this runs once per image name (50k-1M per listing or hash)
    base = os.path.normpath(os.fspath(root))
    p = os.path.normpath(os.path.join(base, file_name))
    prefix = base if base.endswith(os.sep) else base + os.sep
    return Path(p) if p == base or p.startswith(prefix) else None


def resolve_inside(root: Path | str, file_name: str) -> Path | None:
    """``root / file_name`` with symlinks resolved, or None if it escapes ``root`` (``..``,
    absolute paths, a symlinked file or folder pointing out). Such files are never read."""
    if not file_name or "\x00" in str(file_name):
        return None
    rroot = _real_root(root)
    try:
        p = Path(os.path.realpath(os.path.join(rroot, file_name)))
    except (OSError, ValueError):
        return None
    return p if is_inside(rroot, p) else None


def _opened_path(fd: int) -> Path | None:
    try:
        return Path(os.readlink(_PROC_FD / str(fd)))
    except OSError:
        return None


def open_inside(root: Path | str, file_name: str | Path, *, real_root: Path | None = None):
    """Open ``root / file_name`` for binary reading, confined to ``root``.

    The real path (symlinks and linked folders followed) is checked *before* the open: a name
    that leads outside the root is never opened, and neither is anything that is not a regular
    file (a FIFO or a device would block or never end). The path the kernel actually opened is
    checked again after the open (``/proc/self/fd``), so a link swapped in between cannot
    escape; the open itself does not wait on a FIFO swapped in (``O_NONBLOCK``).

    Raises :class:`OutsideRootError` when the name or the file lies outside the root,
    ``FileNotFoundError`` / ``IsADirectoryError`` / ``OSError`` (not a regular file) otherwise.
    ``real_root``: ``realpath(root)``, when the caller opens many files. ``file_name`` may also
    be an absolute path already below the root.
    """
    import stat

    rroot = real_root if real_root is not None else _real_root(root)
    name = str(file_name)
    lex = lexically_inside(Path(root), name)
    if lex is None and lexically_inside(rroot, name) is None:
        raise OutsideRootError(f"{name}: resolves outside the dataset root {root}")
    path = lex if lex is not None else lexically_inside(rroot, name)
    real = Path(os.path.realpath(path))
    if not is_inside(rroot, real):
        raise OutsideRootError(f"{name}: a symbolic link leads outside the dataset root")
    st = os.stat(real)  # FileNotFoundError for a dangling name
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{name}: is a folder")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{name}: not a regular file (a pipe, socket or device); not read")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{name}: not a regular file (a pipe, socket or device); not read")
        opened = _opened_path(fd)
        if opened is None:  # no /proc (not Linux): fall back to realpath, checked just after open
            opened = Path(os.path.realpath(path))
        if not is_inside(rroot, opened):
            raise OutsideRootError(f"{name}: a symbolic link leads outside the dataset root")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f
