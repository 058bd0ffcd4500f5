import pytest

from reports import labels as lab
from reports.labels import LabelError


def test_dada_dev_labels_import(store, dada_dir):
    s = lab.import_label_csv(store, dada_dir / "labels.csv", "dada-dev")
    assert s["videos"] == 12 and s["ghost_probing"] == 6 and s["cut_in"] == 1 and s["format"] == "dada"
    rows = {r["video_id"]: r for r in lab.list_labels(store, "dada-dev")}
    assert len(rows) == 12
    onsets = {v: r["onset_s"] for v, r in rows.items() if r["ghost_probing"]}
    assert onsets == {"images_5_037.avi": 6.0, "images_5_046.avi": 2.0, "images_5_050.avi": 2.0,
                      "images_5_075.avi": 2.0, "images_5_077.avi": 2.0, "images_6_053.avi": 4.0}
    cut = rows["images_6_059.avi"]
    assert cut["kind"] == "cut_in" and cut["ghost_probing"] is False and cut["onset_s"] == 1.0
    assert rows["images_1_024.avi"]["kind"] == "none"


def test_generic_format_accepts_chinese_and_booleans(store, tmp_path):
    f = tmp_path / "g.csv"
    f.write_text("video_id,ghost_probing,onset_s,note\na.mp4,是,1.5,行人\nb.mp4,否,,\nc.mp4,true,2s,\nd.mp4,0,,\n",
                 encoding="utf-8")
    s = lab.import_label_csv(store, f, "g")
    assert (s["format"], s["videos"], s["ghost_probing"], s["with_onset"]) == ("generic", 4, 2, 2)
    rows = {r["video_id"]: r for r in lab.list_labels(store, "g")}
    assert rows["a.mp4"]["note"] == "行人" and rows["c.mp4"]["onset_s"] == 2.0 and rows["b.mp4"]["kind"] == "none"


def test_bad_file_imports_nothing_and_names_rows(store, tmp_path):
    lab.import_label_csv(store, _write(tmp_path / "ok.csv", "video_id,ghost_probing\nx.mp4,1\n"), "keep")
    bad = _write(tmp_path / "bad.csv",
                 "video_id,ground_truth_label,note\na.avi,none,\nb.avi,maybe,\n,none,\nc.avi,3s: ghost probing,\na.avi,none,\n")
    with pytest.raises(LabelError) as e:
        lab.import_label_csv(store, bad, "new")
    msg = str(e.value)
    assert "row 3" in msg and "maybe" in msg and "row 4" in msg and "row 6" in msg and "nothing was imported" in msg
    assert "\n" not in msg
    assert [s["name"] for s in lab.list_sets(store)] == ["keep"]  # the earlier set is untouched
    assert store.scalar("SELECT count(*) FROM labels") == 1


@pytest.mark.parametrize("content,needle", [
    ("", "empty"),
    ("video_id,ghost_probing\n", "no label rows"),
    ("name,label\na,1\n", "no video_id column"),
    ("video_id,foo\na,1\n", "neither"),
])
def test_malformed_files_get_one_sentence(store, tmp_path, content, needle):
    with pytest.raises(LabelError) as e:
        lab.import_label_csv(store, _write(tmp_path / "f.csv", content), "s")
    assert needle in str(e.value)
    assert store.scalar("SELECT count(*) FROM label_sets") == 0


def test_binary_and_missing_files(store, tmp_path):
    b = tmp_path / "x.csv"
    b.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(LabelError, match="not a text CSV"):
        lab.import_label_csv(store, b, "s")
    with pytest.raises(LabelError, match="does not exist"):
        lab.import_label_csv(store, tmp_path / "nope.csv", "s")


def test_existing_set_needs_replace(store, tmp_path):
    f = _write(tmp_path / "a.csv", "video_id,ghost_probing\na.mp4,1\n")
    lab.import_label_csv(store, f, "s")
    with pytest.raises(LabelError, match="already exists"):
        lab.import_label_csv(store, _write(tmp_path / "b.csv", "video_id,ghost_probing\nb.mp4,0\nc.mp4,0\n"), "s")
    assert [r["video_id"] for r in lab.list_labels(store, "s")] == ["a.mp4"]
    lab.import_label_csv(store, tmp_path / "b.csv", "s", replace=True)
    assert [r["video_id"] for r in lab.list_labels(store, "s")] == ["b.mp4", "c.mp4"]


def test_presets_label_by_dada_category_as_weak(store):
    ids = ["images_10_001.avi", "images_1_024.avi", "images_5_046.avi", "images_28_003.avi", "demo_pos_1.mp4"]
    seed = lab.apply_preset(store, "seed", "seed", video_ids=ids)
    assert seed["videos"] == 4 and seed["ghost_probing"] == 2  # 10 and 28; the demo clip has no DADA name
    crossing = lab.apply_preset(store, "dada-crossing", "crossing", video_ids=ids)
    assert crossing["ghost_probing"] == 3  # 10, 1, 5
    sets = {s["name"]: s for s in lab.list_sets(store)}
    assert sets["seed"]["weak"] and sets["crossing"]["weak"]
    with pytest.raises(LabelError, match="Unknown preset"):
        lab.apply_preset(store, "nope", "x", video_ids=ids)


def test_correction_makes_a_new_set_and_keeps_the_original(store, tmp_path):
    lab.import_label_csv(store, _write(tmp_path / "a.csv", "video_id,ghost_probing\na.mp4,1\nb.mp4,0\n"), "human")
    target = lab.save_correction(store, "human", "b.mp4", True, onset_s=1.0, note="reviewer saw it")
    assert target == "human+fix"
    orig = {r["video_id"]: r["ghost_probing"] for r in lab.list_labels(store, "human")}
    fixed = {r["video_id"]: r for r in lab.list_labels(store, "human+fix")}
    assert orig == {"a.mp4": True, "b.mp4": False}
    assert fixed["b.mp4"]["ghost_probing"] is True and fixed["b.mp4"]["source"] == "correction"
    assert fixed["a.mp4"]["ghost_probing"] is True


def test_video_key_matches_names_with_and_without_extension():
    assert lab.video_key("images_1_024.avi") == lab.video_key("images_1_024") == lab.video_key("dir/IMAGES_1_024.AVI")


def _write(p, text):
    p.write_text(text, encoding="utf-8")
    return p
