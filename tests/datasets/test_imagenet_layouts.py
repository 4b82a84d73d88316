"""imagenet: the four validation layouts, detected automatically, and their label files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat
from timm.data import ImageNetInfo

from xaibench.datasets import ImageNet, load_dataset
from xaibench.errors import ResourceUnavailableError

from .helpers import WNIDS, write_image

#: A devkit-style id order that is NOT sorted WordNet-id order: devkit id 1 is the shark,
#: 2 the tench, 3 the goldfish (sorted order would give tench, goldfish, shark).
DEVKIT_IDS = {1: WNIDS[2], 2: WNIDS[0], 3: WNIDS[1]}


def timm_index(wnid: str) -> int:
    return ImageNetInfo().label_names().index(wnid)


def val_name(i: int) -> str:
    return f"ILSVRC2012_val_{i:08d}.JPEG"


def write_flat(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        write_image(folder / name, seed, size=(8, 8))
    return folder


def write_devkit(folder: Path, ground_truth: list[int], meta: bool = True) -> Path:
    """``ILSVRC2012_validation_ground_truth.txt`` (+ ``meta.mat``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{i}\n" for i in ground_truth)
    )
    if meta:
        # Like the real devkit: an N×1 struct array, with a non-leaf synset (id > 1000) too.
        entries = [*DEVKIT_IDS.items(), (1001, "n00001740")]
        synsets = np.zeros(
            (len(entries), 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O")]
        )
        for row, (devkit_id, wnid) in enumerate(entries):
            synsets[row, 0] = (np.array([[devkit_id]], dtype=np.uint16), wnid, f"words of {wnid}")
        savemat(folder / "meta.mat", {"synsets": synsets})
    return folder


def write_loc_csv(path: Path, rows: dict[str, str]) -> Path:
    lines = ["ImageId,PredictionString"]
    lines += [f"{image_id},{wnid} 1 2 30 40 {wnid} 5 6 7 8" for image_id, wnid in rows.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wnid_folders_keep_their_ids(imagenet_root: Path) -> None:
    dataset = ImageNet(root=str(imagenet_root), input_size=(16, 16))
    assert dataset.layout == "wnid-folders"
    assert dataset.ids[:2] == [
        f"imagenet:{WNIDS[0]}/ILSVRC2012_val_00000001.JPEG",
        f"imagenet:{WNIDS[0]}/ILSVRC2012_val_00000002.png",
    ]
    assert dataset.labels == [
        timm_index(w) for w in (WNIDS[0],) * 2 + (WNIDS[1],) * 2 + (WNIDS[2],)
    ]
    description = dataset.describe()
    assert description["layout"] == "wnid-folders"
    assert "folder names" in str(description["labels_source"])
    assert "labels" not in description["params"]


def test_devkit_ids_are_mapped_through_meta_mat(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "val", [val_name(i) for i in (1, 2, 3, 4)])
    write_devkit(tmp_path / "ILSVRC2012_devkit_t12" / "data", [1, 2, 3, 2])  # beside the root
    dataset = load_dataset("imagenet", input_size=(8, 8), root=str(root))
    assert dataset.layout == "ilsvrc-flat+devkit"
    assert dataset.ids == [f"imagenet:{val_name(i)}" for i in (1, 2, 3, 4)]
    # shark, tench, goldfish, tench — not the sorted-wnid reading (tench, goldfish, shark, goldfish).
    assert dataset.labels == [
        timm_index(WNIDS[2]),
        timm_index(WNIDS[0]),
        timm_index(WNIDS[1]),
        timm_index(WNIDS[0]),
    ]
    assert dataset.labels[1] == 0 and dataset.labels[2] == 1
    assert (
        "ILSVRC2012_validation_ground_truth.txt" in dataset.labels_source
        and "meta.mat" in dataset.labels_source
    )
    assert dataset.describe()["layout"] == "ilsvrc-flat+devkit"
    assert dataset.load([0]).pixels.shape == (1, 3, 8, 8)
    assert dataset.skipped == []


@pytest.mark.parametrize("where", ["root", "parent", "inside"])
def test_devkit_files_are_found_in_each_searched_place(tmp_path: Path, where: str) -> None:
    root = write_flat(tmp_path / "val", [val_name(1), val_name(2)])
    folder = {"root": root, "parent": tmp_path, "inside": root / "ILSVRC2012_devkit_t12" / "data"}[
        where
    ]
    write_devkit(folder, [3, 1])
    dataset = ImageNet(root=str(root), input_size=(8, 8))
    assert dataset.labels == [timm_index(WNIDS[1]), timm_index(WNIDS[2])]
    assert dataset.labels_source.startswith(str(folder / "ILSVRC2012_validation_ground_truth.txt"))


def test_ground_truth_without_meta_mat_is_refused(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "val", [val_name(1)])
    write_devkit(root, [1], meta=False)
    with pytest.raises(ResourceUnavailableError) as excinfo:
        ImageNet(root=str(root))
    message = str(excinfo.value)
    assert "meta.mat" in message and "ILSVRC2012_validation_ground_truth.txt" in message
    assert "map devkit ids to WordNet ids" in message
    assert "quickstart" in message


def test_ground_truth_without_meta_mat_falls_back_to_a_loc_csv(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "val", [val_name(1)])
    write_devkit(root, [1], meta=False)
    write_loc_csv(tmp_path / "LOC_val_solution.csv", {"ILSVRC2012_val_00000001": WNIDS[1]})
    dataset = ImageNet(root=str(root), input_size=(8, 8))
    assert (dataset.layout, dataset.labels) == ("ilsvrc-flat+loc-csv", [timm_index(WNIDS[1])])


def test_kaggle_layout_with_the_csv_at_the_kaggle_root(tmp_path: Path) -> None:
    kaggle = tmp_path / "kaggle"
    root = write_flat(kaggle / "ILSVRC" / "Data" / "CLS-LOC" / "val", [val_name(8726), val_name(2)])
    write_loc_csv(
        kaggle / "LOC_val_solution.csv",
        {"ILSVRC2012_val_00008726": WNIDS[1], "ILSVRC2012_val_00000002": WNIDS[0]},
    )
    dataset = ImageNet(root=str(root), input_size=(8, 8))
    assert dataset.layout == "ilsvrc-flat+loc-csv"
    assert dataset.labels_source == str(kaggle / "LOC_val_solution.csv")
    assert dict(zip(dataset.ids, dataset.labels, strict=True)) == {
        f"imagenet:{val_name(2)}": timm_index(WNIDS[0]),
        f"imagenet:{val_name(8726)}": timm_index(WNIDS[1]),
    }
    assert dataset.load([0]).pixels.shape == (1, 3, 8, 8)


def test_loc_csv_two_levels_up(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "a" / "b" / "val", [val_name(1)])
    write_loc_csv(tmp_path / "a" / "LOC_val_solution.csv", {"ILSVRC2012_val_00000001": WNIDS[2]})
    dataset = ImageNet(root=str(root), input_size=(8, 8))
    assert (dataset.layout, dataset.labels) == ("ilsvrc-flat+loc-csv", [timm_index(WNIDS[2])])


def test_labels_parameter_overrides_the_search(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "val", [val_name(1), val_name(2)])
    write_devkit(tmp_path, [1, 1])  # would say shark, shark
    elsewhere = write_loc_csv(
        tmp_path / "mine" / "labels.csv",
        {"ILSVRC2012_val_00000001": WNIDS[0], "ILSVRC2012_val_00000002": WNIDS[1]},
    )
    dataset = load_dataset("imagenet", input_size=(8, 8), root=str(root), labels=str(elsewhere))
    assert dataset.labels == [timm_index(WNIDS[0]), timm_index(WNIDS[1])]
    assert dataset.labels_source == str(elsewhere)
    assert dataset.describe()["params"]["labels"] == str(elsewhere)
    # A devkit txt given explicitly finds the meta.mat beside it.
    devkit = write_devkit(tmp_path / "devkit", [2, 3])
    explicit = ImageNet(
        root=str(root), labels=str(devkit / "ILSVRC2012_validation_ground_truth.txt")
    )
    assert explicit.layout == "ilsvrc-flat+devkit"
    assert explicit.labels == [timm_index(WNIDS[0]), timm_index(WNIDS[1])]
    with pytest.raises(ResourceUnavailableError, match="not a file"):
        ImageNet(root=str(root), labels=str(tmp_path / "missing.csv"))


def test_labels_is_a_declared_parameter() -> None:
    from xaibench.registry import datasets

    assert [p.name for p in datasets.params("imagenet")] == ["root", "labels"]


def test_wnid_prefixed_flat_files(tmp_path: Path) -> None:
    root = write_flat(
        tmp_path / "flat",
        [f"{WNIDS[0]}_tench.JPEG", f"{WNIDS[1]}_10026.png", f"{WNIDS[2]}_a_b.jpg"],
    )
    dataset = ImageNet(root=str(root), input_size=(8, 8))
    assert dataset.layout == "wnid-prefixed-flat"
    assert dataset.ids == [
        f"imagenet:{WNIDS[0]}_tench.JPEG",
        f"imagenet:{WNIDS[1]}_10026.png",
        f"imagenet:{WNIDS[2]}_a_b.jpg",
    ]
    assert dataset.labels == [timm_index(w) for w in WNIDS]
    assert dataset.describe()["layout"] == "wnid-prefixed-flat"
    assert dataset.load([0]).pixels.shape == (1, 3, 8, 8)


def test_an_image_missing_from_the_label_file_is_skipped_and_recorded(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "val", [val_name(1), val_name(2), val_name(3)])
    # The label file names images 1, 3 and 99 (not on disk: fine), not image 2.
    write_loc_csv(
        tmp_path / "LOC_val_solution.csv",
        {
            "ILSVRC2012_val_00000001": WNIDS[0],
            "ILSVRC2012_val_00000003": WNIDS[1],
            "ILSVRC2012_val_00000099": WNIDS[2],
        },
    )
    with pytest.warns(RuntimeWarning, match=re.escape(val_name(2))):
        dataset = ImageNet(root=str(root), input_size=(8, 8))
    assert dataset.ids == [f"imagenet:{val_name(1)}", f"imagenet:{val_name(3)}"]
    assert dataset.labels == [timm_index(WNIDS[0]), timm_index(WNIDS[1])]
    assert len(dataset.skipped) == 1
    path, reason = dataset.skipped[0]
    assert path == str(root / val_name(2)) and "LOC_val_solution.csv" in reason
    assert dataset.describe()["skipped"] == [[path, reason]]


def test_flat_ilsvrc_folder_without_labels_says_where_it_looked(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "val", [val_name(1)])
    with pytest.raises(ResourceUnavailableError) as excinfo:
        ImageNet(root=str(root))
    message = str(excinfo.value)
    assert "ILSVRC2012_validation_ground_truth.txt" in message and "LOC_val_solution.csv" in message
    assert str(tmp_path / "ILSVRC2012_devkit_t12" / "data") in message
    assert "labels" in message and "quickstart" in message


def test_unmatched_folder_names_all_four_layouts(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "photos", ["cat.jpg", "dog.png"])
    (root / "holiday").mkdir()
    write_image(root / "holiday" / "beach.jpg", seed=3, size=(8, 8))
    with pytest.raises(ResourceUnavailableError) as excinfo:
        ImageNet(root=str(root))
    message = str(excinfo.value)
    for layout in (
        "wnid-folders",
        "ilsvrc-flat+devkit",
        "ilsvrc-flat+loc-csv",
        "wnid-prefixed-flat",
    ):
        assert layout in message
    for example in (
        "<root>/n01440764/ILSVRC2012_val_00000293.JPEG",
        "<root>/ILSVRC2012_val_00000001.JPEG",
        "<kaggle>/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG",
        "<root>/n01440764_10026.JPEG",
    ):
        assert example in message
    assert "--data" in message and "XAIBENCH_IMAGENET" in message
    assert "xaibench run --suite quickstart" in message
    assert str(root) in message
