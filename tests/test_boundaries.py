"""The house rules DESIGN.md draws: streamlit only in qa/app, no heavy imports on `import qa`."""

import ast
import subprocess
import sys
from pathlib import Path

QA = Path(__file__).resolve().parents[1] / "qa"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_qa_app_imports_streamlit():
    offenders = [str(p.relative_to(QA)) for p in QA.rglob("*.py")
                 if "app" not in p.relative_to(QA).parts[:1] and "streamlit" in _imports(p)]
    assert offenders == []


def test_import_qa_pulls_no_heavy_modules():
    code = ("import sys, qa, qa.io, qa.validation, qa.viz\n"
            "heavy = [m for m in ('torch', 'open_clip', 'faiss', 'streamlit', 'torchvision') "
            "if m in sys.modules]\nprint(','.join(heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == ""
