"""Print the packages whose installed version (a `pip freeze` file) is not the one the lock
pins: `python tools/pins_diff.py requirements.lock freeze.txt`. Used by `make test-latest`.

A universal lock may pin a package twice under markers (numpy for Python 3.11 and for 3.12+);
a version matching either pin is not a difference."""

import re
import sys
from collections import defaultdict

PIN = re.compile(r"(?m)^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)")


def pins(path: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    with open(path, encoding="utf-8") as f:
        for name, version in PIN.findall(f.read()):
            out[re.sub(r"[-_.]+", "-", name).lower()].add(version)
    return out


def main(lock: str, freeze: str) -> int:
    locked, installed = pins(lock), pins(freeze)
    diff = [(k, sorted(locked[k]), sorted(installed[k])) for k in sorted(locked.keys() & installed.keys())
            if not installed[k] & locked[k]]
    for name, old, new in diff:
        print(f"  {name}: {' | '.join(old)} -> {' | '.join(new)}")
    new_pkgs = sorted(installed.keys() - locked.keys())
    if new_pkgs:
        print(f"  not in the lock: {', '.join(new_pkgs)}")
    if not diff and not new_pkgs:
        print("  (none: the newest releases are the locked ones)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
