"""The `dataset-qa` command (headless). Shared plumbing lives here; each command group is a
module of this package (``COMMAND_MODULES``) with a ``register(subparsers)`` function.

Exit status: 0 fine, 1 a gate failed (--fail-on-error / --fail-on-check), 2 unusable input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from qa.dataset import DatasetError

log = logging.getLogger("qa")

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


def on_terminal() -> bool:
    """Whether progress bars can be drawn: stderr is a terminal. Redirected to a file or a
    pipe (``dataset-qa duplicates ... > out.txt 2>&1``, a CI log) a bar would write thousands
    of lines, so none is drawn."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(desc: str):
    """A tqdm-backed progress(done, total) callback for slow steps; None (no bar) when stderr
    is not a terminal."""
    if not on_terminal():
        return None
    from tqdm import tqdm

    bar = {"t": None}

    def cb(done: int, total: int) -> None:
        if bar["t"] is None:
            bar["t"] = tqdm(total=total, desc=desc, unit="img", leave=False, file=sys.stderr)
        bar["t"].n = done
        bar["t"].refresh()
        if done >= total:
            bar["t"].close()

    return cb


def fraction_bar(desc: str, quiet: bool = False):
    """A ``progress(fraction, message)`` callback (the analyses' kind) drawing a tqdm bar
    with the step's message on stderr; None when ``quiet`` (``--json``) or when stderr is not a
    terminal."""
    if quiet or not on_terminal():
        return None
    from tqdm import tqdm

    state = {"t": None}

    def cb(frac: float, msg: str = "") -> None:
        if state["t"] is None:
            state["t"] = tqdm(total=1000, desc=desc, leave=False, file=sys.stderr,
                              bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")
        t = state["t"]
        t.n = int(min(max(float(frac), 0.0), 1.0) * 1000)
        t.set_postfix_str(str(msg)[:60], refresh=True)
        if frac >= 1.0:
            t.close()

    return cb


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file beside it, then a
    rename, so a reader never sees half a file."""
    from qa.io.export import write_atomic

    write_atomic(path, text.encode("utf-8"))


def _note_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (an undefined statistic, a skipped step) as one line for a CLI user, without
    Python's file name and source line."""
    try:
        sys.stderr.write(f"dataset-qa: note: {' '.join(str(message).split())}\n")
    except (BrokenPipeError, ValueError):
        pass


def load_dataset(args):
    """The dataset named on the command line, with its predictions: those given with
    ``--predictions`` (a broken one is an error), else ``predictions/*.json`` beside a dataset
    folder, as the app does (a broken one is skipped with a warning), unless
    ``--no-predictions``."""
    from pathlib import Path

    import qa
    from qa.io import attach_predictions
    from qa.io.predictions import find_predictions

    names = getattr(args, "prediction_names", None)
    columns = getattr(args, "yolo_columns", "auto")
    ds = qa.load(args.path, format=args.format, predictions=args.predictions or None,
                 image_root=args.image_root, probe=not getattr(args, "no_probe", False),
                 progress=None if args.json else progress_bar("reading image headers"),
                 voc_coordinates=getattr(args, "voc_coordinates", "auto"),
                 prediction_names=names, yolo_columns=columns)
    path = Path(args.path)
    if not args.predictions and not getattr(args, "no_predictions", False) and path.is_dir():
        found = find_predictions(path)
        if found:
            ds, problems = attach_predictions(ds, [str(p) for p in found], errors="collect",
                                              names=names, yolo_columns=columns)
            for msg in problems:
                sys.stderr.write(f"dataset-qa: warning: predictions not loaded: {msg}\n")
    return ds


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(df, cols) -> str:
    return df[[c for c in cols if c in df.columns]].to_string(index=False, float_format="%.3f")


def dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset folder or labels file")
    p.add_argument("--format", default="auto", help="format (default: sniffed)")
    p.add_argument("--predictions", action="append",
                   help="model predictions file (repeatable; default: predictions/*.json beside "
                        "a dataset folder)")
    p.add_argument("--no-predictions", action="store_true",
                   help="do not pick up predictions/*.json beside the dataset")
    p.add_argument("--image-root", default=None, help="where the image files are")
    p.add_argument("--prediction-names", default=None, metavar="FILE",
                   help="the model's class names (names file or data.yaml) when its class "
                        "order differs from the dataset's")
    p.add_argument("--yolo-columns", default="auto",
                   choices=("auto", "class_box_conf", "class_conf_box"),
                   help="column order of YOLO prediction txt files (default: detected)")
    p.add_argument("--voc-coordinates", default="auto",
                   choices=("auto", "one_based", "zero_based"),
                   help="Pascal VOC pixel convention: the devkit's 1-based (default, unless "
                        "the file says it is a CVAT export) or 0-based")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def ray_args(p: argparse.ArgumentParser) -> None:
    """``--ray`` / ``--layout``: run the per-image work on a Ray cluster (qa.distributed)."""
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="decode, hash and embed on a Ray cluster: 'auto' (the one started "
                        "here with `ray start`, or $RAY_ADDRESS), 'local', or HOST:PORT "
                        "(needs pip install 'dataset-qa[ray]')")
    p.add_argument("--layout", default=None, metavar="URI",
                   help="with --ray: where every node keeps its results (a folder all nodes "
                        "see, s3://..., gs://...; default: the cache folder's cluster/)")


# One module per command group; each has ``register(sub)`` adding its sub-commands. Add a
# module here to add commands (a tuple, not a plugin system: the list is the documentation).
COMMAND_MODULES = (
    "qa.cli.info",
    "qa.cli.stats",
    "qa.cli.agreement",
    "qa.cli.embed",
    "qa.cli.duplicates",
    "qa.cli.disagreement",
    "qa.cli.report",
    "qa.cli.review",
    "qa.cli.select",
    "qa.cli.compare",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(prog="dataset-qa", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:  # -v also shows the traceback of an error (logged at debug level)
        log.setLevel(logging.DEBUG)
    with warnings.catch_warnings():  # restored on return (main() also runs inside tests)
        if not args.verbose:
            warnings.showwarning = _note_warning
        return _run(args)


class _MainThreadStdout:
    """stdout for the main thread only: what other threads print (Ray's driver prints node
    and error messages to stdout from threads of its own) goes to stderr, so ``--json``
    output stays one JSON document."""

    def __init__(self, out, err):
        self._out, self._err = out, err

    def write(self, text):
        import threading

        main = threading.current_thread() is threading.main_thread()
        return (self._out if main else self._err).write(text)

    def __getattr__(self, name):
        return getattr(self._out, name)


def _run(args) -> int:
    if getattr(args, "ray", None):
        real = sys.stdout
        sys.stdout = _MainThreadStdout(real, sys.stderr)
        try:
            return _run_command(args)
        finally:
            real.flush()
            sys.stdout = sys.stderr  # Ray prints what it held back when it disconnects
            try:
                _disconnect_ray()
            finally:
                sys.stdout = real
    return _run_command(args)


def _disconnect_ray() -> None:
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        ray.shutdown()


def _run_command(args) -> int:
    try:
        return args.func(args)
    except BrokenPipeError:  # `dataset-qa info ... | head` closed the pipe: not an error
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except (DatasetError, ValueError, TypeError) as exc:  # bad input or option, said in words
        log.debug("unusable input", exc_info=True)
        return _fail(str(exc))
    except ImportError as exc:  # an optional extra that is not installed: the hint says how
        log.debug("missing optional package", exc_info=True)
        return _fail(str(exc))
    except RuntimeError as exc:
        if type(exc).__module__.startswith("qa."):  # ours (a cluster that failed): in words
            log.debug("failed", exc_info=True)
            return _fail(str(exc))
        log.debug("unexpected error", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with -v for details)")
    except MemoryError:
        return _fail("ran out of memory reading this input; it is far larger than a dataset's "
                     "labels should be. Check the file.")
    except Exception as exc:  # anything else: still one line, the traceback only with -v
        log.debug("unexpected error", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with -v for details)")


def _fail(message: str) -> int:
    """Print one line (newlines folded) to stderr and return the 'unusable input' status."""
    one_line = " ".join(str(message).split())
    try:
        sys.stderr.write(f"dataset-qa: error: {one_line}\n")
    except (BrokenPipeError, ValueError):
        pass
    return EXIT_UNUSABLE


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush does
    not print a second error (Python's documented recipe)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass

