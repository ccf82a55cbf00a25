"""The Oxford-IIIT Pet layout: read it (real dataset or synthetic) and write it (for the generator).

Layout: images/<Class_name>_<n>.jpg, annotations/trimaps/<stem>.png (1 pet, 2 background, 3 border),
annotations/xmls/<stem>.xml (VOC; the real set has XML for only part of its images), annotations/list.txt
(`#` header lines, then `Image CLASS-ID SPECIES BREED ID`), annotations/trainval.txt and annotations/test.txt.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

Box = tuple[int, int, int, int]

LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID",
    "#ID: 1:{classes} Class ids",
    "#SPECIES: 1:{first} 2:{second}",
    "#BREED ID: 1-{n_first}:{first} 1:{n_second}:{second}",
    "#All images with 1st letter as captial are cat images",
    "#images with small first letter are dog images",
)


@dataclass(frozen=True)
class VocObject:
    """One `<object>` of a VOC annotation: its `<name>` and `<bndbox>` in pixels."""

    name: str
    box: Box


@dataclass(frozen=True)
class Record:
    """One image with its class from list.txt and the paths of its annotations (None if absent)."""

    stem: str
    class_id: int
    species: int
    breed_id: int
    image: Path
    trimap: Path | None
    xml: Path | None

    @property
    def class_name(self) -> str:
        return class_name_of(self.stem)


@dataclass(frozen=True)
class OxfordDataset:
    """Class names in CLASS-ID order (a subset of the real set may skip ids), trainval and test records."""

    root: Path
    classes: tuple[str, ...]
    class_index: dict[int, int]
    trainval: tuple[Record, ...]
    test: tuple[Record, ...]

    def label(self, record: Record) -> int:
        """A record's class index into `classes`."""
        return self.class_index[record.class_id]

    def split(self, name: str) -> tuple[Record, ...]:
        if name not in ("trainval", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'trainval' or 'test'")
        return self.trainval if name == "trainval" else self.test


def class_name_of(stem: str) -> str:
    """`yorkshire_terrier_190` -> `yorkshire_terrier`: everything before the last underscore."""
    name, _, number = stem.rpartition("_")
    if not name or not number.isdigit():
        raise ValueError(f"image name {stem!r} is not <class>_<number>")
    return name


def read_list(path: Path) -> list[tuple[str, int, int, int]]:
    """Rows `(image, class_id, species, breed_id)` of list.txt, trainval.txt or test.txt; skips `#` lines."""
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 4:
            raise ValueError(f"{path}:{line_no}: expected 'Image CLASS-ID SPECIES BREED-ID', got {line!r}")
        rows.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
    return rows


def read_voc_xml(path: Path) -> list[VocObject]:
    """The `<object>` entries of a VOC annotation file."""
    root = ET.parse(path).getroot()
    objects = []
    for obj in root.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            continue
        box = tuple(int(float(bndbox.findtext(key, "0"))) for key in ("xmin", "ymin", "xmax", "ymax"))
        objects.append(VocObject(name=obj.findtext("name", "").strip(), box=box))  # type: ignore[arg-type]
    return objects


def load_layout(root: Path) -> OxfordDataset:
    """Index a data set in the Oxford-IIIT Pet layout; class names come from image names, by CLASS-ID."""
    annotations = root / "annotations"
    names: dict[int, str] = {}
    for stem, class_id, _, _ in read_list(annotations / "list.txt"):
        names.setdefault(class_id, class_name_of(stem))
    ids = sorted(names)
    classes = tuple(names[i] for i in ids)
    splits = {split: tuple(_records(root, annotations / f"{split}.txt")) for split in ("trainval", "test")}
    return OxfordDataset(
        root=root,
        classes=classes,
        class_index={class_id: i for i, class_id in enumerate(ids)},
        trainval=splits["trainval"],
        test=splits["test"],
    )


def _records(root: Path, split_file: Path) -> Iterable[Record]:
    for stem, class_id, species, breed_id in read_list(split_file):
        image = root / "images" / f"{stem}.jpg"
        if not image.exists():
            raise FileNotFoundError(f"{split_file} lists {stem} but {image} is missing")
        trimap = root / "annotations" / "trimaps" / f"{stem}.png"
        xml = root / "annotations" / "xmls" / f"{stem}.xml"
        yield Record(
            stem=stem,
            class_id=class_id,
            species=species,
            breed_id=breed_id,
            image=image,
            trimap=trimap if trimap.exists() else None,
            xml=xml if xml.exists() else None,
        )


def object_class(obj: VocObject, record: Record, dataset: OxfordDataset) -> int:
    """Class index of a VOC object: its `<name>` when that is a class, else the image's class.

    The real set names objects by species (`cat`, `dog`) and has one pet per image, so the breed comes from
    the file name; the synthetic set names each object by its own class.
    """
    classes = dataset.classes
    return classes.index(obj.name) if obj.name in classes else dataset.label(record)


def species_of(class_names: Sequence[str], class_id: int) -> tuple[int, int]:
    """(SPECIES, BREED ID) for a synthetic class: first half of the classes species 1, the rest species 2."""
    half = (len(class_names) + 1) // 2
    return (1, class_id) if class_id <= half else (2, class_id - half)


def write_list_files(
    root: Path, classes: Sequence[str], entries: Sequence[tuple[str, int]], test: set[int]
) -> None:
    """Write list.txt (with the `#` header), trainval.txt and test.txt for `(stem, class_id)` entries."""
    half = (len(classes) + 1) // 2
    header = "\n".join(LIST_HEADER).format(
        classes=len(classes), first="Species1", second="Species2", n_first=half, n_second=len(classes) - half
    )
    rows = [
        f"{stem} {class_id} {' '.join(map(str, species_of(classes, class_id)))}" for stem, class_id in entries
    ]
    annotations = root / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    (annotations / "list.txt").write_text(header + "\n" + "\n".join(rows) + "\n")
    (annotations / "trainval.txt").write_text("".join(r + "\n" for i, r in enumerate(rows) if i not in test))
    (annotations / "test.txt").write_text("".join(r + "\n" for i, r in enumerate(rows) if i in test))


def write_voc_xml(
    path: Path, filename: str, size: tuple[int, int], objects: Sequence[tuple[str, Box, bool, bool]]
) -> None:
    """Write a VOC annotation like Oxford-IIIT Pet's: size, then one `<object>` with `<bndbox>` each."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "OXIIIT"
    ET.SubElement(root, "filename").text = filename
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "OXIIIT"
    size_el = ET.SubElement(root, "size")
    for key, value in zip(("width", "height", "depth"), (*size, 3), strict=True):
        ET.SubElement(size_el, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for name, box, occluded, truncated in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Frontal"
        ET.SubElement(obj, "truncated").text = str(int(truncated))
        ET.SubElement(obj, "occluded").text = str(int(occluded))
        bndbox = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bndbox, key).text = str(value)
        ET.SubElement(obj, "difficult").text = "0"
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="unicode")
