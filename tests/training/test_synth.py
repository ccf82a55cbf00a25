"""The synthetic generator writes the Oxford-IIIT Pet layout that the loader reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.oxford import load_layout, read_voc_xml
from training.data.synth import SHAPES, shape_polygon, write_dataset


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("synth"), count=20, seed=3, max_objects=3)


def test_layout_files_exist_for_every_image(scenes: Path) -> None:
    dataset = load_layout(scenes)
    records = dataset.trainval + dataset.test
    assert len(records) == 20
    assert len(dataset.test) == 4
    assert not {r.stem for r in dataset.trainval} & {r.stem for r in dataset.test}
    assert all(r.xml is not None and r.trimap is not None for r in records)
    present = {r.class_name for r in records}
    assert set(dataset.classes) == present <= set(SHAPES)


def test_list_txt_has_the_oxford_header_and_columns(scenes: Path) -> None:
    lines = (scenes / "annotations" / "list.txt").read_text().splitlines()
    assert lines[0] == "#Image CLASS-ID SPECIES BREED ID"
    rows = [line.split() for line in lines if not line.startswith("#")]
    assert len(rows) == 20
    for stem, class_id, species, breed in rows:
        assert stem.rpartition("_")[0] == SHAPES[int(class_id) - 1]
        assert species in ("1", "2")
        assert int(breed) >= 1


def test_names_objects_and_trimaps_agree(scenes: Path) -> None:
    dataset = load_layout(scenes)
    counts = []
    for record in dataset.trainval + dataset.test:
        objects = read_voc_xml(record.xml)  # type: ignore[arg-type]
        counts.append(len(objects))
        assert objects[0].name == record.class_name
        assert all(obj.name in SHAPES for obj in objects)
        trimap = np.asarray(Image.open(record.trimap))  # type: ignore[arg-type]
        assert set(np.unique(trimap)) == {1, 2, 3}
        with Image.open(record.image) as image:
            assert trimap.shape == (image.height, image.width)
        for obj in objects:
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 < image.width
            assert 0 <= y1 < y2 < image.height
    assert min(counts) >= 1
    assert 1 < max(counts) <= 3


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a", count=3, seed=11)
    second = write_dataset(tmp_path / "b", count=3, seed=11)
    names = sorted(p.name for p in (first / "images").iterdir())
    assert names == sorted(p.name for p in (second / "images").iterdir())
    for name in names:
        assert (first / "images" / name).read_bytes() == (second / "images" / name).read_bytes()


def test_shapes_differ_in_outline() -> None:
    vertex_counts = {shape: len(shape_polygon(shape, 0, 0, 10, 0)) for shape in SHAPES}
    assert len(SHAPES) >= 6
    assert len(set(vertex_counts.values())) == len(SHAPES)
