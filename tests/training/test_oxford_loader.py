"""The layout loader reads a hand-made fixture that follows the real Oxford-IIIT Pet conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from service.core.imaging import upright
from training.data.arrays import load_split, upright_box
from training.data.oxford import (
    VocObject,
    class_name_of,
    load_layout,
    read_list,
    read_voc_xml,
    write_list_files,
    write_voc_xml,
)

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
    data, _ = load_split(dataset, "trainval", "detect", (32, 32))
    assert data.images.shape == (3, 32, 32, 3)
    assert data.boxes is not None
    assert data.box_classes is not None
    # Abyssinian_1 is 60x40 with the head box (20, 8, 44, 30); the XML says "cat", the class is the breed.
    np.testing.assert_allclose(data.boxes[0, 0], [20 / 60, 8 / 40, 44 / 60, 30 / 40])
    assert data.box_classes[0].tolist() == [0] + [-1] * (data.box_classes.shape[1] - 1)
    assert data.box_classes[2, 0] == 3


def test_detection_skips_images_without_xml(dataset) -> None:  # type: ignore[no-untyped-def]
    data, _ = load_split(dataset, "test", "detect", (32, 32))
    assert data.labels.tolist() == [1]


def test_segmentation_arrays_hold_the_three_trimap_classes(dataset) -> None:  # type: ignore[no-untyped-def]
    data, _ = load_split(dataset, "test", "segment", (32, 32))
    assert data.masks is not None
    assert data.masks.shape == (2, 32, 32)
    assert set(np.unique(data.masks)) == {0, 1, 2}
    assert data.masks[0, 16, 16] == 0  # pet in the middle
    assert data.masks[0, 0, 0] == 1  # background in the corner


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_box_moves_with_the_photo(orientation: int) -> None:
    stored = Image.new("L", (60, 40))
    stored.paste(255, (12, 4, 30, 34))
    turned = upright(stored, orientation)
    left, top, right, bottom = turned.getbbox()  # type: ignore[misc]
    width, height = turned.size
    expected = (left / width, top / height, right / width, bottom / height)
    np.testing.assert_allclose(upright_box((12 / 60, 4 / 40, 30 / 60, 34 / 40), orientation), expected)


def rotated_pet_layout(root: Path, orientation: int) -> None:
    """One photo stored sideways with an EXIF orientation; its trimap and box drawn on the stored pixels."""
    images, trimaps, xmls = root / "images", root / "annotations" / "trimaps", root / "annotations" / "xmls"
    for folder in (images, trimaps, xmls):
        folder.mkdir(parents=True)
    box = (10, 5, 30, 35)
    photo = Image.new("RGB", (60, 40))
    photo.paste((255, 255, 255), box)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    photo.save(images / "Abyssinian_1.jpg", quality=95, exif=exif)
    trimap = Image.new("L", (60, 40), 2)
    trimap.paste(1, box)
    trimap.save(trimaps / "Abyssinian_1.png")
    write_voc_xml(xmls / "Abyssinian_1.xml", "Abyssinian_1.jpg", (60, 40), [("cat", box, False, False)])
    write_list_files(root, ["Abyssinian"], [("Abyssinian_1", 1)], test=set())


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_masks_and_boxes_stay_on_the_pet_of_an_exif_rotated_photo(tmp_path: Path, orientation: int) -> None:
    rotated_pet_layout(tmp_path, orientation)
    dataset = load_layout(tmp_path)
    segment, _ = load_split(dataset, "trainval", "segment", (32, 32))
    bright = segment.images[0].mean(axis=2) > 128
    assert segment.masks is not None
    # The trimap's pet is where the upright photo is white, give or take the resized edges.
    assert np.mean(bright == (segment.masks[0] == 0)) > 0.95
    detect, _ = load_split(dataset, "trainval", "detect", (32, 32))
    assert detect.boxes is not None
    x1, y1, x2, y2 = (detect.boxes[0, 0] * 32).round().astype(int)
    rows, cols = np.nonzero(bright)
    assert abs(cols.min() - x1) <= 1
    assert abs(rows.min() - y1) <= 1
    assert abs(cols.max() + 1 - x2) <= 1
    assert abs(rows.max() + 1 - y2) <= 1
