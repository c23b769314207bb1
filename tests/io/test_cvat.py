from __future__ import annotations

import pytest
from writers import cvat_xml

from qa.dataset import ANNOTATOR, FILE_NAME, SPLIT, DatasetError, H, W, X, Y
from qa.io import read_labels, sniff_format
from qa.io.cvat import read

SPEC = {
    "images": [{"file_name": "a.jpg", "width": 100, "height": 50},
               {"file_name": "empty.jpg", "width": 30, "height": 20}],
    "categories": ["car", "person", "unused"],
    "annotations": [
        {"file_name": "a.jpg", "label": "car", "bbox": [10.5, 5, 20, 10], "occluded": 1},
        {"file_name": "a.jpg", "label": "person", "bbox": None},
    ],
}


def test_single_file_owner_subset_boxes_tags_polygons(tmp_path):
    xml = cvat_xml(SPEC, owner="dana", subset="Validation").replace(
        "</image>", '<polygon label="person" points="1,2;11,2;11,22" occluded="0"/></image>', 1)
    p = tmp_path / "annotations.xml"
    p.write_text(xml)
    assert sniff_format(p) == "cvat"
    ds = read_labels(p)
    assert ds.format == "cvat" and ds.annotators == ("dana",)
    # labels declared in <meta> are categories even when unused
    assert ds.category_names == {1: "car", 2: "person", 3: "unused"}
    assert ds.images[FILE_NAME].tolist() == ["a.jpg", "empty.jpg"]
    assert ds.images[SPLIT].astype(str).tolist() == ["val", "val"]
    a = ds.annotations
    assert a[[X, Y, W, H]].iloc[0].tolist() == [10.5, 5, 20, 10]
    assert a[W].isna().tolist() == [False, True, False]
    assert a["occluded"].tolist() == [1, 0, 0]
    assert a[[X, Y, W, H]].iloc[2].tolist() == [1, 2, 10, 20]
    assert a["segmentation"].iloc[2] == [[1, 2, 11, 2, 11, 22]]
    assert ds.load_issues.empty


def test_folder_one_file_per_annotator_matched_by_image_name(tmp_path):
    d = tmp_path / "annotations"
    d.mkdir()
    (d / "ann.xml").write_text(cvat_xml(SPEC))
    other = {**SPEC, "images": SPEC["images"][::-1]}  # different <image id>s, same names
    (d / "ben.xml").write_text(cvat_xml(other, owner="ignored"))
    assert sniff_format(tmp_path) == "cvat"
    ds = read_labels(tmp_path)
    assert ds.annotators == ("ann", "ben") and len(ds.images) == 2
    assert ds.annotations.groupby(ANNOTATOR, observed=True).size().tolist() == [2, 2]
    assert ds.annotations.groupby("image_id").size().to_dict() == {1: 4}
    assert ds.root == tmp_path


def test_single_file_without_owner_is_default_annotator(tmp_path):
    p = tmp_path / "t.xml"
    p.write_text(cvat_xml(SPEC))
    assert read(p).annotators == ("annotator",)


def test_bad_shapes_are_quarantined_with_file_and_item(tmp_path):
    p = tmp_path / "t.xml"
    p.write_text('<annotations><image id="0" name="a.jpg" width="10" height="10">'
                 '<box label="car" xtl="1" ytl="1" xbr="x" ybr="5"/>'
                 '<box xtl="1" ytl="1" xbr="2" ybr="5"/>'
                 '<polygon label="car" points="1,2;3"/>'
                 '<points label="car" points="1,2"/>'
                 '<box label="car" xtl="1" ytl="1" xbr="2" ybr="5"/>'
                 '</image><image id="1"/></annotations>')
    ds = read(p)
    msgs = ds.load_issues["message"].tolist()
    assert len(msgs) == 5 and all(str(p) in m for m in msgs)
    assert "image 'a.jpg' <box> #0 (car) needs numeric" in msgs[0]
    assert "<box> #1 has no label" in msgs[1]
    assert "<polygon> #2" in msgs[2]
    assert "<image> #1" in msgs[3]
    assert "1 CVAT <points> shape skipped (first: image 'a.jpg' <points> #3)" in msgs[4]
    assert len(ds.annotations) == 1


def test_skipped_masks_are_counted(tmp_path):
    # CVAT writes a <mask> per brush-drawn object: the warning says how many, not 1
    masks = "".join(f'<mask label="car" rle="1, 2" left="0" top="0" width="2" height="2"/>'
                    for _ in range(245))
    p = tmp_path / "t.xml"
    p.write_text(f'<annotations><image id="0" name="a.jpg" width="10" height="10">{masks}'
                 '<box label="car" xtl="1" ytl="1" xbr="2" ybr="5"/></image></annotations>')
    ds = read(p)
    (msg,) = ds.load_issues.loc[ds.load_issues["check"] == "unsupported_shape", "message"]
    assert "245 CVAT <mask> shapes skipped" in msg and "polygons" in msg
    assert len(ds.annotations) == 1


@pytest.mark.parametrize("text, match", [
    ("<annotations><image></annotations>", r"t\.xml: malformed XML at line 1"),
    ("<annotation/>", "expected a CVAT <annotations>"),
    ("<annotations><track id='0' label='a'/></annotations>", "CVAT for video"),
])
def test_bad_cvat_files_raise(tmp_path, text, match):
    (tmp_path / "t.xml").write_text(text)
    with pytest.raises(DatasetError, match=match):
        read(tmp_path / "t.xml")
