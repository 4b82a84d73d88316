"""image_folder / imagenet: listing, labels, corrupt files, missing data."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from timm.data import ImageNetInfo

from xaibench.datasets import ImageFolder, ImageNet, load_dataset
from xaibench.errors import ResourceUnavailableError

from .helpers import WNIDS, write_image


def test_imagenet_lists_wnid_folders_with_imagenet_labels(imagenet_root: Path) -> None:
    dataset = load_dataset("imagenet", input_size=(32, 32), root=str(imagenet_root))
    info = ImageNetInfo()
    assert len(dataset) == 5
    # Listing is sorted: folders by name, files by name (extensions of any case).
    assert dataset.ids[0] == f"imagenet:{WNIDS[0]}/ILSVRC2012_val_00000001.JPEG"
    assert dataset.ids == sorted(dataset.ids)
    assert dataset.labels == [info.label_names().index(w) for w in (WNIDS[0],) * 2 + (WNIDS[1],) * 2 + (WNIDS[2],)]
    assert dataset.labels[:3] == [0, 0, 1]
    assert dataset.label_names[0] == info.index_to_description(0)
    assert len(dataset.label_names) == 1000
    batch = dataset.load_all()
    assert batch.pixels.shape == (5, 3, 32, 32)
    assert batch.pixels.dtype == torch.float32
    assert 0.0 <= float(batch.pixels.min()) and float(batch.pixels.max()) <= 1.0
    assert batch.labels.tolist() == dataset.labels
    assert dataset.describe()["root"] == str(imagenet_root)
    assert dataset.skipped == []


def test_corrupt_files_are_skipped_with_a_warning_naming_them(imagenet_root: Path) -> None:
    garbage = imagenet_root / WNIDS[1] / "ILSVRC2012_val_00000009.JPEG"
    garbage.write_bytes(b"this is not a JPEG at all" * 10)
    # A truncated JPEG: the header parses, the decode fails.
    good = imagenet_root / WNIDS[2] / "ILSVRC2012_val_00000005.jpeg"
    truncated = imagenet_root / WNIDS[2] / "ILSVRC2012_val_00000006.JPEG"
    truncated.write_bytes(good.read_bytes()[:300])

    dataset = ImageNet(root=str(imagenet_root), input_size=(24, 24))
    assert len(dataset) == 7  # listing never decodes, so the bad files are listed
    with pytest.warns(RuntimeWarning) as record:
        batch = dataset.load(range(len(dataset)))
    messages = [str(w.message) for w in record]
    assert any(str(garbage) in m for m in messages)
    assert any(str(truncated) in m for m in messages)
    assert len(batch) == 5
    assert not any(i.endswith(("00000009.JPEG", "00000006.JPEG")) for i in batch.ids)
    assert {path for path, _ in dataset.skipped} == {str(garbage), str(truncated)}
    assert all(reason for _, reason in dataset.skipped)
    # The order of the survivors is the order asked for; labels stay aligned.
    expected = [i for i in dataset.ids if not i.endswith(("00000009.JPEG", "00000006.JPEG"))]
    assert batch.ids == expected
    assert batch.labels.tolist() == [dataset.labels[dataset.ids.index(i)] for i in expected]
    # Loading a bad file again warns again but records it once.
    with pytest.warns(RuntimeWarning, match=re.escape(str(garbage))):
        only_bad = dataset.load([dataset.ids.index(f"imagenet:{WNIDS[1]}/{garbage.name}")])
    assert len(only_bad) == 0 and only_bad.pixels.shape == (0, 3, 24, 24)
    assert len(dataset.skipped) == 2


def test_missing_file_after_listing_is_skipped(imagenet_root: Path) -> None:
    dataset = ImageNet(root=str(imagenet_root), input_size=(16, 16))
    removed = Path(dataset.source(0))
    removed.unlink()
    with pytest.warns(RuntimeWarning, match=re.escape(str(removed))):
        batch = dataset.load([0, 1])
    assert batch.ids == [dataset.ids[1]]


def test_unknown_wnid_folder_is_warned_and_skipped(imagenet_root: Path) -> None:
    (imagenet_root / "not_a_wnid").mkdir()
    write_image(imagenet_root / "not_a_wnid" / "x.JPEG", seed=9)
    (imagenet_root / "n99999999").mkdir()
    write_image(imagenet_root / "n99999999" / "y.png", seed=10)
    # Stray files and hidden entries are not images of any class.
    (imagenet_root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n")
    (imagenet_root / WNIDS[0] / "notes.txt").write_text("not an image")
    (imagenet_root / WNIDS[0] / ".hidden.JPEG").write_bytes(b"")
    with pytest.warns(RuntimeWarning) as record:
        dataset = ImageNet(root=str(imagenet_root), input_size=(16, 16))
    messages = " ".join(str(w.message) for w in record)
    assert "not_a_wnid" in messages and "n99999999" in messages
    assert len(dataset) == 5
    assert not any("not_a_wnid" in i or "n99999999" in i for i in dataset.ids)
    assert {Path(p).name for p, _ in dataset.skipped} == {"not_a_wnid", "n99999999"}


def test_imagenet_without_a_path_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XAIBENCH_IMAGENET", raising=False)
    with pytest.raises(ResourceUnavailableError) as excinfo:
        load_dataset("imagenet", input_size=(224, 224), channels=3)
    message = str(excinfo.value)
    assert "XAIBENCH_IMAGENET" in message
    assert "--data" in message
    assert "<root>/<wnid>/<image>.JPEG" in message
    assert "xaibench run --suite quickstart" in message
    assert "no path was given" in message


def test_imagenet_with_a_missing_folder_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "val"
    monkeypatch.setenv("XAIBENCH_IMAGENET", str(missing))
    with pytest.raises(ResourceUnavailableError) as excinfo:
        ImageNet()
    message = str(excinfo.value)
    assert str(missing) in message
    assert "XAIBENCH_IMAGENET" in message and "quickstart" in message


def test_imagenet_root_from_environment(monkeypatch: pytest.MonkeyPatch, imagenet_root: Path) -> None:
    monkeypatch.setenv("XAIBENCH_IMAGENET", str(imagenet_root))
    dataset = ImageNet(input_size=(16, 16))
    assert len(dataset) == 5
    assert dataset.params["root"] == str(imagenet_root)


def test_imagenet_folder_without_class_folders_is_an_error(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    write_image(flat / "ILSVRC2012_val_00000001.JPEG", seed=0)
    with pytest.raises(ResourceUnavailableError, match="quickstart"):
        ImageNet(root=str(flat))


def test_image_folder_labels_are_sorted_folder_indices(tmp_path: Path) -> None:
    for folder, count in (("zebra", 1), ("cat", 2), ("dog", 1)):
        (tmp_path / folder).mkdir()
        for k in range(count):
            write_image(tmp_path / folder / f"{k}.PNG", seed=k)
    dataset = load_dataset("image_folder", input_size=(20, 30), channels=1, root=str(tmp_path))
    assert dataset.label_names == {0: "cat", 1: "dog", 2: "zebra"}
    assert dataset.labels == [0, 0, 1, 2]
    assert dataset.ids[0] == "image_folder:cat/0.PNG"
    batch = dataset.load([3, 0])
    assert batch.pixels.shape == (2, 1, 20, 30)
    assert batch.labels.tolist() == [2, 0]


def test_image_folder_requires_an_existing_root(tmp_path: Path) -> None:
    with pytest.raises(ResourceUnavailableError, match="does not exist"):
        ImageFolder(root=str(tmp_path / "missing"))


def test_threaded_decoding_matches_sequential(imagenet_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threaded = ImageNet(root=str(imagenet_root), input_size=(28, 28)).load_all()
    monkeypatch.setattr(ImageNet, "decode_threads", 1)
    sequential = ImageNet(root=str(imagenet_root), input_size=(28, 28)).load_all()
    assert threaded.ids == sequential.ids
    assert torch.equal(threaded.pixels, sequential.pixels)


def test_no_warning_for_a_clean_folder(imagenet_root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageNet(root=str(imagenet_root), input_size=(16, 16)).load_all()
