"""The ImageNet validation layouts ``imagenet`` accepts, detected from the files on disk.

Pure functions: :func:`list_layout` looks at a folder and returns a :class:`Listing` (the
layout, where the labels came from, ``(path, id, label)`` items and what was left out), or
raises :class:`LayoutError` with a message that says what was looked for. The four layouts:

1. ``wnid-folders``: ``<root>/n01440764/*.JPEG``; the label is the folder's WordNet id.
2. ``ilsvrc-flat+devkit``: ``<root>/ILSVRC2012_val_00000001.JPEG …`` with the devkit's
   ``ILSVRC2012_validation_ground_truth.txt`` (line *i* = image *i*, devkit ids 1..1000)
   and ``meta.mat`` (``synsets``: devkit id → WordNet id; the devkit ids are *not* sorted
   WordNet-id order).
3. ``ilsvrc-flat+loc-csv``: the same flat folder with Kaggle's ``LOC_val_solution.csv``
   (``ImageId,PredictionString``; the label is the first WordNet id of PredictionString).
4. ``wnid-prefixed-flat``: ``<root>/n01440764_10026.JPEG``; the label is the WordNet id
   before the first underscore.

WordNet ids become class indices through ``wnid_index`` (timm's ImageNet-1k order).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .folder import _list_class_folders, _list_images

GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META = "meta.mat"
LOC_CSV = "LOC_val_solution.csv"
DEVKIT_DATA = os.path.join("ILSVRC2012_devkit_t12", "data")
ILSVRC_PREFIX = "ILSVRC2012_val_"
WNID_PREFIXED = re.compile(r"^(n\d{8})_")

#: (name, example) of each layout, in detection order.
LAYOUTS = (
    (
        "wnid-folders",
        "<root>/<wnid>/<image>.JPEG, e.g. <root>/n01440764/ILSVRC2012_val_00000293.JPEG",
    ),
    (
        "ilsvrc-flat+devkit",
        f"<root>/ILSVRC2012_val_00000001.JPEG … with {GROUND_TRUTH} and {META} of the devkit "
        f"(in <root>, <root>/.. or an {DEVKIT_DATA}/ folder beside or inside <root>)",
    ),
    (
        "ilsvrc-flat+loc-csv",
        f"<kaggle>/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG with <kaggle>/{LOC_CSV} "
        f"(in <root>, <root>/.., <root>/../.. or the Kaggle folder)",
    ),
    ("wnid-prefixed-flat", "<root>/n01440764_10026.JPEG (WordNet id before the first underscore)"),
)


#: (layout, label files used, image stem → WordNet id).
LabelSource = tuple[str, tuple[str, ...], dict[str, str]]


class LayoutError(Exception):
    """No layout matches, or its label files cannot be used; the message says why."""


@dataclass
class Listing:
    """What :func:`list_layout` found. ``items`` ids are relative (``<folder>/<file>`` or ``<file>``)."""

    layout: str
    labels_source: str
    items: list[tuple[str, str, int]] = field(default_factory=list)
    skipped_folders: list[tuple[str, str]] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)


def layouts_text() -> str:
    """The accepted layouts as one line: ``1) wnid-folders: <root>/<wnid>/… ; 2) …``."""
    return "; ".join(f"{i}) {name}: {example}" for i, (name, example) in enumerate(LAYOUTS, 1))


def list_layout(root: str, wnid_index: Mapping[str, int], labels: str | None = None) -> Listing:
    """Detect the layout of ``root`` and list its labelled images (see the module docstring).

    ``labels`` (a devkit ground-truth txt or a LOC csv) overrides the label-file search of
    the flat ILSVRC layout.
    """
    listing = _wnid_folders(root, wnid_index)
    if listing is None:
        names = _list_images(root)
        if any(name.startswith(ILSVRC_PREFIX) for name in names):
            listing = _ilsvrc_flat(root, names, wnid_index, labels)
        elif any(WNID_PREFIXED.match(name) for name in names):
            listing = _wnid_prefixed(root, names, wnid_index)
        else:
            raise LayoutError(
                f"ImageNet validation images not found: no accepted layout under {root} "
                f"({len(names)} image file(s) directly inside, none named ILSVRC2012_val_* or "
                f"<wnid>_*; no WordNet-id folder with images)."
            )
    if not listing.items:
        examples = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in listing.skipped_files[:3])
        raise LayoutError(
            f"ImageNet validation images not found: none of the images under {root} has an "
            f"ImageNet label (layout {listing.layout}, labels from {listing.labels_source}; "
            f"e.g. {examples or 'no images'})."
        )
    return listing


# -- layout 1 and 4: the label is in the path ---------------------------------------------------


def _wnid_folders(root: str, wnid_index: Mapping[str, int]) -> Listing | None:
    """Layout 1, or None when no known WordNet-id folder holds an image."""
    listing = Listing("wnid-folders", "folder names (WordNet ids)")
    for folder in _list_class_folders(root):
        if folder not in wnid_index:
            listing.skipped_folders.append((folder, "not an ImageNet WordNet id"))
            continue
        directory = os.path.join(root, folder)
        for name in _list_images(directory):
            listing.items.append(
                (os.path.join(directory, name), f"{folder}/{name}", wnid_index[folder])
            )
    return listing if listing.items else None


def _wnid_prefixed(root: str, names: list[str], wnid_index: Mapping[str, int]) -> Listing:
    listing = Listing("wnid-prefixed-flat", "file-name prefixes (WordNet ids)")
    for name in names:
        match = WNID_PREFIXED.match(name)
        path = os.path.join(root, name)
        if match is None:
            listing.skipped_files.append((path, "name does not start with <wnid>_"))
        elif match.group(1) not in wnid_index:
            listing.skipped_files.append((path, f"{match.group(1)} is not an ImageNet WordNet id"))
        else:
            listing.items.append((path, name, wnid_index[match.group(1)]))
    return listing


# -- layouts 2 and 3: a flat ILSVRC2012_val_* folder and a label file ---------------------------


def _ilsvrc_flat(
    root: str, names: list[str], wnid_index: Mapping[str, int], labels: str | None
) -> Listing:
    layout, sources, wnids = _label_source(root, labels)
    listing = Listing(layout, " + ".join(sources))
    where = os.path.basename(sources[0])
    for name in names:
        path = os.path.join(root, name)
        wnid = wnids.get(os.path.splitext(name)[0])
        if not name.startswith(ILSVRC_PREFIX):
            listing.skipped_files.append((path, f"not an {ILSVRC_PREFIX}* file"))
        elif wnid is None:
            listing.skipped_files.append((path, f"not in the label file {where}"))
        elif wnid not in wnid_index:
            listing.skipped_files.append((path, f"label {wnid} is not an ImageNet WordNet id"))
        else:
            listing.items.append((path, name, wnid_index[wnid]))
    return listing


def _label_source(root: str, labels: str | None) -> LabelSource:
    """(layout, label files, image stem → WordNet id) of the flat ILSVRC folder ``root``."""
    if labels is not None:
        return _explicit_labels(root, labels)
    devkit_dirs = _devkit_dirs(root)
    ground_truth = _first_file(devkit_dirs, GROUND_TRUTH)
    meta = _first_file(_with_first(ground_truth, devkit_dirs), META)
    if ground_truth and meta:
        return _devkit_labels(ground_truth, meta)
    loc_csv = _first_file(_loc_dirs(root), LOC_CSV)
    if loc_csv:
        return "ilsvrc-flat+loc-csv", (loc_csv,), read_loc_csv(loc_csv)
    if ground_truth:
        raise LayoutError(_meta_missing(ground_truth, devkit_dirs))
    raise LayoutError(
        f"ImageNet validation labels not found: {root} holds flat {ILSVRC_PREFIX}* images, "
        f"which need a label file. Looked for {GROUND_TRUTH} with {META} (devkit "
        f"ILSVRC2012_devkit_t12) in {', '.join(devkit_dirs)}, and for {LOC_CSV} (Kaggle) in "
        f"{', '.join(_loc_dirs(root))}. Put one of them there, or give its path with the "
        f"dataset parameter labels = PATH."
    )


def _explicit_labels(root: str, labels: str) -> LabelSource:
    path = os.path.abspath(os.path.expanduser(labels))
    if not os.path.isfile(path):
        raise LayoutError(
            f"ImageNet labels file not found: the parameter labels = {labels!r} is not a file."
        )
    with open(path, encoding="utf-8", errors="replace") as handle:
        first_line = handle.readline()
    if "ImageId" in first_line:
        return "ilsvrc-flat+loc-csv", (path,), read_loc_csv(path)
    dirs = _with_first(path, _devkit_dirs(root))
    meta = _first_file(dirs, META)
    if meta is None:
        raise LayoutError(_meta_missing(path, dirs))
    return _devkit_labels(path, meta)


def _devkit_labels(ground_truth: str, meta: str) -> LabelSource:
    ids = read_ground_truth(ground_truth)
    id_to_wnid = read_meta_mat(meta)
    wnids = {}
    for number, devkit_id in enumerate(ids, 1):
        if devkit_id not in id_to_wnid:
            raise LayoutError(
                f"ImageNet labels unusable: {ground_truth} line {number} has the devkit id "
                f"{devkit_id}, which {meta} does not map to a WordNet id (a devkit of another year?)."
            )
        wnids[f"{ILSVRC_PREFIX}{number:08d}"] = id_to_wnid[devkit_id]
    return "ilsvrc-flat+devkit", (ground_truth, meta), wnids


def _meta_missing(ground_truth: str, dirs: list[str]) -> str:
    return (
        f"ImageNet labels unusable: found {ground_truth} but no {META} (looked in "
        f"{', '.join(dirs)}). The ground-truth file holds devkit ILSVRC2012_IDs, which are not "
        f"the classifiers' class indices (nor sorted WordNet-id order): {META} from "
        f"ILSVRC2012_devkit_t12/data/ is needed to map devkit ids to WordNet ids. Put it beside "
        f"the ground-truth file, or use Kaggle's {LOC_CSV} (dataset parameter labels = PATH)."
    )


# -- where label files are looked for -----------------------------------------------------------


def _devkit_dirs(root: str) -> list[str]:
    """``<root>``, ``<root>/<devkit>/data``, ``<root>/..``, ``<root>/../<devkit>/data``."""
    root = os.path.abspath(root)
    parent = os.path.dirname(root)
    return _unique(
        [root, os.path.join(root, DEVKIT_DATA), parent, os.path.join(parent, DEVKIT_DATA)]
    )


def _loc_dirs(root: str) -> list[str]:
    """``<root>``, ``..``, ``../..``, and ``<kaggle>`` when root is ``<kaggle>/ILSVRC/Data/CLS-LOC/<split>``."""
    dirs = [os.path.abspath(root)]
    for _ in range(2):
        dirs.append(os.path.dirname(dirs[-1]))
    parts = dirs[0].split(os.sep)
    if parts[-4:-1] == ["ILSVRC", "Data", "CLS-LOC"]:
        dirs.append(os.sep.join(parts[:-4]) or os.sep)
    return _unique(dirs)


def _with_first(path: str | None, dirs: list[str]) -> list[str]:
    """``dirs`` with the folder of ``path`` (if any) first."""
    return _unique(([os.path.dirname(path)] if path else []) + dirs)


def _unique(dirs: list[str]) -> list[str]:
    return list(dict.fromkeys(dirs))


def _first_file(dirs: list[str], name: str) -> str | None:
    for directory in dirs:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


# -- label files --------------------------------------------------------------------------------


def read_ground_truth(path: str) -> list[int]:
    """The devkit ids of ``ILSVRC2012_validation_ground_truth.txt``: item *i-1* is image *i*."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().rstrip().splitlines()
    ids = []
    for number, line in enumerate(lines, 1):
        try:
            ids.append(int(line.strip()))
        except ValueError:
            raise LayoutError(
                f"ImageNet labels unusable: {path} line {number} is {line.strip()!r}, not a devkit "
                f"id (one integer per line, line i = ILSVRC2012_val_<i>)."
            ) from None
    return ids


def read_meta_mat(path: str) -> dict[int, str]:
    """Devkit ILSVRC2012_ID → WordNet id, from the ``synsets`` struct of the devkit's ``meta.mat``."""
    import numpy as np
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        synsets = np.atleast_1d(loadmat(path, squeeze_me=True)["synsets"]).ravel()
        return {
            int(np.asarray(entry["ILSVRC2012_ID"]).item()): str(
                np.asarray(entry["WNID"]).item()
            ).strip()
            for entry in synsets
        }
    except (
        MatReadError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        NotImplementedError,
    ) as exc:
        raise LayoutError(
            f"ImageNet labels unusable: cannot read the synsets (ILSVRC2012_ID, WNID) of {path} "
            f"({type(exc).__name__}: {exc}); expected the meta.mat of ILSVRC2012_devkit_t12/data/."
        ) from None


def read_loc_csv(path: str) -> dict[str, str]:
    """Image id → WordNet id from Kaggle's ``LOC_val_solution.csv`` (first id of PredictionString)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        rows = csv.reader(handle)
        header = [column.strip() for column in next(rows, [])]
        if "ImageId" not in header or "PredictionString" not in header:
            raise LayoutError(
                f"ImageNet labels unusable: {path} has the header {','.join(header)!r}; expected "
                f"'ImageId,PredictionString' (Kaggle's {LOC_CSV})."
            )
        image_col, labels_col = header.index("ImageId"), header.index("PredictionString")
        wnids = {}
        for row in rows:
            if len(row) > max(image_col, labels_col) and row[labels_col].split():
                wnids[os.path.splitext(row[image_col].strip())[0]] = row[labels_col].split()[0]
    return wnids
