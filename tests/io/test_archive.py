import io
import zipfile

import pytest

from qa.dataset import DatasetError
from qa.io.archive import extract_zip


def _zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    buf.seek(0)
    return buf


def test_extracts_into_fresh_folder_and_returns_single_top_folder(tmp_path):
    out = extract_zip(_zip([("ds/annotations/a.json", "{}"), ("ds/images/x.jpg", b"x")]),
                      dest_parent=tmp_path)
    assert out.name == "ds" and (out / "annotations" / "a.json").read_text() == "{}"
    assert tmp_path in out.parents


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "ds/../../evil.txt"])
def test_refuses_paths_escaping_the_folder(tmp_path, bad):
    with pytest.raises(DatasetError, match="outside the extraction folder"):
        extract_zip(_zip([("ok.txt", "1"), (bad, "x")]), dest_parent=tmp_path)
    assert not (tmp_path.parent / "evil.txt").exists()
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


def test_refuses_symlinks(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    buf.seek(0)
    with pytest.raises(DatasetError, match="symbolic link"):
        extract_zip(buf, dest_parent=tmp_path)


def test_size_limit_and_not_a_zip(tmp_path):
    with pytest.raises(DatasetError, match="over the 0 MiB limit"):
        extract_zip(_zip([("a.bin", b"0" * 5000)]), dest_parent=tmp_path, max_bytes=1000)
    with pytest.raises(DatasetError, match="not a readable .zip"):
        extract_zip(io.BytesIO(b"hello"), dest_parent=tmp_path)
