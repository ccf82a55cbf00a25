"""The layout loader reads a hand-made fixture that follows the real Oxford-IIIT Pet conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data.arrays import load_split
from training.data.oxford import VocObject, class_name_of, load_layout, read_list, read_voc_xml

FIXTURE = Path(__file__).parent / "fixtures" / "oxford_pet"


@pytest.fixture(scope="module")
def dataset():  # type: ignore[no-untyped-def]
    return load_layout(FIXTURE)


def test_class_names_come_from_image_names_in_class_id_order(dataset) -> None:  # type: ignore[no-untyped-def]
    # CLASS-IDs 1, 2, 6, 37 in the real set; a subset keeps their order and compacts the indices.
    assert dataset.classes == ("Abyssinian", "american_bulldog", "Bengal", "yorkshire_terrier")
    assert dataset.class_index == {1: 0, 2: 1, 6: 2, 37: 3}


def test_splits_follow_trainval_and_test_files(dataset) -> None:  # type: ignore[no-untyped-def]
    assert [r.stem for r in dataset.trainval] == ["Abyssinian_1", "Bengal_12", "yorkshire_terrier_190"]
    assert [r.stem for r in dataset.test] == ["Abyssinian_100", "american_bulldog_10"]
    terrier = dataset.trainval[2]
    assert (terrier.class_id, terrier.species, terrier.breed_id) == (37, 2, 25)
    assert terrier.class_name == "yorkshire_terrier"


def test_image_without_xml_is_kept_with_no_boxes(dataset) -> None:  # type: ignore[no-untyped-def]
    no_xml = dataset.test[0]
    assert no_xml.stem == "Abyssinian_100"
    assert no_xml.xml is None
    assert no_xml.trimap is not None


def test_list_txt_header_lines_are_skipped() -> None:
    rows = read_list(FIXTURE / "annotations" / "list.txt")
    assert (FIXTURE / "annotations" / "list.txt").read_text().startswith("#Image CLASS-ID SPECIES BREED ID\n")
    assert len(rows) == 5
    assert rows[0] == ("Abyssinian_1", 1, 1, 1)


def test_voc_xml_objects() -> None:
    objects = read_voc_xml(FIXTURE / "annotations" / "xmls" / "yorkshire_terrier_190.xml")
    assert objects == [VocObject(name="dog", box=(12, 12, 32, 34))]


def test_class_name_of_rejects_names_without_a_number() -> None:
    assert class_name_of("american_pit_bull_terrier_7") == "american_pit_bull_terrier"
    with pytest.raises(ValueError, match="not <class>_<number>"):
        class_name_of("Abyssinian")


def test_detection_arrays_take_the_breed_from_the_file_name(dataset) -> None:  # type: ignore[no-untyped-def]
    data = load_split(dataset, "trainval", "detect", (32, 32))
    assert data.images.shape == (3, 32, 32, 3)
    assert data.boxes is not None
    assert data.box_classes is not None
    # Abyssinian_1 is 60x40 with the head box (20, 8, 44, 30); the XML says "cat", the class is the breed.
    np.testing.assert_allclose(data.boxes[0, 0], [20 / 60, 8 / 40, 44 / 60, 30 / 40])
    assert data.box_classes[0].tolist() == [0] + [-1] * (data.box_classes.shape[1] - 1)
    assert data.box_classes[2, 0] == 3


def test_detection_skips_images_without_xml(dataset) -> None:  # type: ignore[no-untyped-def]
    data = load_split(dataset, "test", "detect", (32, 32))
    assert data.labels.tolist() == [1]


def test_segmentation_arrays_hold_the_three_trimap_classes(dataset) -> None:  # type: ignore[no-untyped-def]
    data = load_split(dataset, "test", "segment", (32, 32))
    assert data.masks is not None
    assert data.masks.shape == (2, 32, 32)
    assert set(np.unique(data.masks)) == {0, 1, 2}
    assert data.masks[0, 16, 16] == 0  # pet in the middle
    assert data.masks[0, 0, 0] == 1  # background in the corner
