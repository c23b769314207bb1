"""Review-store fixtures: every store test runs on SQLite and on a throwaway PostgreSQL server.

The PostgreSQL server is started once per session from Debian's `postgresql` package
(initdb + pg_ctl, as the `postgres` user when the tests run as root) on a free port, in a
temporary folder, with trust authentication on 127.0.0.1 only; each test gets its own empty
database. Where the binaries are absent the PostgreSQL runs are skipped, unless
QA_REQUIRE_POSTGRES=1 (CI sets it), which turns the absence into a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                 key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
PG_BIN = Path(PG_BINS[-1]) if PG_BINS else None
HAVE_PG = PG_BIN is not None and (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()
if not HAVE_PG and os.environ.get("QA_REQUIRE_POSTGRES") == "1":
    raise RuntimeError("QA_REQUIRE_POSTGRES=1 but the PostgreSQL server binaries are not "
                       "installed (apt-get install postgresql)")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not HAVE_PG, reason="PostgreSQL server binaries not installed (apt-get install postgresql)"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server as the `postgres` user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]


@pytest.fixture(scope="session")
def pg_server():
    """URL of the session's throwaway PostgreSQL server (database `postgres`)."""
    if not HAVE_PG:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="qa-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                                 "-U", "postgres", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    opts = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50")
    start = subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts,
                                         "-l", str(base / "server.log"), "-w", "-t", "60",
                                         "start"]), capture_output=True, text=True, check=False)
    if start.returncode != 0:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        pytest.fail(f"PostgreSQL did not start: {start.stderr}\n{log[-2000:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                                     "-w", "stop"]), capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conninfo = pg_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return pg_server.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=BACKENDS)
def review_url(request, tmp_path):
    """A URL of an empty decisions database: SQLite in tmp_path, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def review_store(review_url):
    from qa.review import ReviewStore

    st = ReviewStore(review_url)
    yield st
    st.close()
