"""Any timm architecture as a ``Classifier``, with hub weights that never hang offline.

Before ``pretrained=True`` touches timm, the weights are looked up in the local caches
(Hugging Face hub cache, or torch hub for URL-only weights). When they are missing and
the hub is offline (``HF_HUB_OFFLINE``), a ``ResourceUnavailableError`` says what is
missing and what works offline. When online, the download runs with short timeouts and any
failure becomes the same error. timm then builds from the cache with the hub forced
offline, so loading cached weights makes no network call at all.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from torch import nn

from ..errors import ConfigError, ResourceUnavailableError
from ..registry import models
from ..types import Classifier

#: Seconds a hub metadata request or a stalled download may take before giving up.
NETWORK_TIMEOUT_S = 10
OFFLINE_COMMAND = "xaibench run --suite quickstart"
# What timm's ``load_state_dict_from_hf`` tries for a hub repo without a filename override.
_HF_DEFAULT_FILES = ("model.safetensors", "pytorch_model.bin")
_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (read now, not at import)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.strip().lower() in _TRUE or bool(constants.HF_HUB_OFFLINE)


@contextmanager
def _patched(target: Any, **values: Any) -> Iterator[None]:
    saved = {name: getattr(target, name) for name in values if hasattr(target, name)}
    for name, value in values.items():
        if name in saved:
            setattr(target, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(target, name, value)


@contextmanager
def _hub_forced_offline() -> Iterator[None]:
    # huggingface_hub reads HF_HUB_OFFLINE at import; its request hook checks the constant.
    from huggingface_hub import constants

    with _patched(constants, HF_HUB_OFFLINE=True):
        yield


@contextmanager
def _short_timeouts(seconds: int = NETWORK_TIMEOUT_S) -> Iterator[None]:
    # The env vars are read at import, so patch the constants; the private retry timeout
    # (60 s) is patched only if it exists. A user's explicit env setting wins.
    from huggingface_hub import constants, file_download

    overrides = {}
    if "HF_HUB_ETAG_TIMEOUT" not in os.environ:
        overrides["HF_HUB_ETAG_TIMEOUT"] = seconds
    if "HF_HUB_DOWNLOAD_TIMEOUT" not in os.environ:
        overrides["HF_HUB_DOWNLOAD_TIMEOUT"] = seconds
    previous_socket_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)  # torch.hub's urllib download has no timeout argument
    try:
        with _patched(constants, **overrides), _patched(file_download, _ETAG_RETRY_TIMEOUT=seconds):
            yield
    finally:
        socket.setdefaulttimeout(previous_socket_timeout)


def _hf_candidates(cfg: dict[str, Any]) -> list[str]:
    filename = cfg.get("hf_hub_filename")
    if not filename:
        return list(_HF_DEFAULT_FILES)
    candidates = [filename]
    if filename.endswith(".bin"):  # timm prefers a safetensors twin when there is one
        stem = filename[: -len(".bin")]
        candidates.insert(0, "model.safetensors" if filename == "pytorch_model.bin" else stem + ".safetensors")
    return candidates


def _split_revision(hub_id: str) -> tuple[str, str | None]:
    repo, _, revision = hub_id.partition("@")
    return repo, revision or None


def _unavailable(model: str, missing: str, why: str) -> ResourceUnavailableError:
    from huggingface_hub import constants

    return ResourceUnavailableError(
        f"model {model!r}: pretrained weights {missing} are not on this machine ({why}). "
        f"To make them available, run once with network access (HF_HUB_OFFLINE unset), or put "
        f"the file into the Hugging Face cache ({constants.HF_HUB_CACHE}; set HF_HOME or "
        f"HF_HUB_CACHE to a cache that holds it); or use pretrained=false for random weights. "
        f"Works offline: `{OFFLINE_COMMAND}` (EfficientNet-Lite0 ships with the package)."
    )


def ensure_pretrained_weights(model: str, cfg: dict[str, Any]) -> str:
    """Make sure timm can load ``cfg``'s weights from local files; describe their source.

    Downloads (with short timeouts) only when the hub is online. Raises
    ``ResourceUnavailableError`` when the weights cannot be had, ``ConfigError`` when timm
    has no pretrained weights for the architecture at all.
    """
    hub_id = cfg.get("hf_hub_id")
    url = cfg.get("url")
    file = cfg.get("file")
    if cfg.get("state_dict") is not None:
        return "state_dict in pretrained_cfg"
    if file:
        if not Path(file).is_file():
            raise _unavailable(model, f"file {file}", "the file does not exist")
        return str(file)
    if hub_id:
        return _ensure_hf(model, hub_id, _hf_candidates(cfg))
    if url:
        return _ensure_url(model, url)
    raise ConfigError(
        f"timm has no pretrained weights for {cfg.get('architecture', model)!r}; "
        "use pretrained=false for random weights"
    )


def _ensure_hf(model: str, hub_id: str, candidates: list[str]) -> str:
    from huggingface_hub import (
        errors,
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
        try_to_load_from_cache,
    )

    # huggingface_hub < 1.0 has no Remote… subclass; its EntryNotFoundError meant remote.
    remote_missing = getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)
    repo, revision = _split_revision(hub_id)
    for filename in candidates:
        if isinstance(try_to_load_from_cache(repo, filename, revision=revision), str):
            return hub_id
    missing = f"hf-hub {hub_id} ({' or '.join(candidates)})"
    if hub_offline():
        raise _unavailable(model, missing, "not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    absent = []
    with _short_timeouts():
        for filename in candidates:
            # One HEAD request without retries first: hf_hub_download retries a failed
            # connection with back-off for tens of seconds per file.
            try:
                get_hf_file_metadata(
                    hf_hub_url(repo, filename, revision=revision), timeout=NETWORK_TIMEOUT_S
                )
            except remote_missing:
                absent.append(filename)  # the repo lacks this file; timm would try the next
                continue
            except Exception as exc:  # any network or hub failure means: not available
                raise _unavailable(
                    model, missing, f"cannot reach the hub: {type(exc).__name__}: {exc}"
                ) from exc
            try:
                hf_hub_download(repo, filename, revision=revision, etag_timeout=NETWORK_TIMEOUT_S)
            except Exception as exc:
                raise _unavailable(
                    model, missing, f"download failed: {type(exc).__name__}: {exc}"
                ) from exc
            return hub_id
    raise _unavailable(model, missing, f"the hub repo has none of {', '.join(absent)}")


def _ensure_url(model: str, url: str) -> str:
    import torch.hub

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return url
    if hub_offline():
        raise _unavailable(model, f"{url} (expected at {cached})", "offline mode (HF_HUB_OFFLINE) is set")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with _short_timeouts():
        try:
            torch.hub.download_url_to_file(url, str(cached), progress=False)
        except Exception as exc:
            raise _unavailable(
                model, f"{url} (expected at {cached})", f"download failed: {type(exc).__name__}: {exc}"
            ) from exc
    return url


def _class_names(network: nn.Module, num_classes: int) -> list[str] | None:
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(network)
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return list(info.label_descriptions()) if info.num_classes() == num_classes else None


def unknown_arch_error(arch: str) -> ConfigError:
    """The error for an architecture timm does not know, suggesting close names."""
    import timm

    close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"timm has no architecture {arch!r}.{hint} See timm.list_models().")


def build_timm_classifier(
    arch: str,
    *,
    name: str | None = None,
    pretrained: bool = True,
    img_size: int | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
) -> Classifier:
    """Build ``arch`` with timm and wrap it; ``name`` is the name results record.

    ``in_chans`` (e.g. 1 for grayscale data) is passed to timm, which adapts pretrained
    first-layer weights by summing over the RGB filters; the normalisation then uses the
    mean of the RGB means and stds for every channel.
    """
    import timm

    name = name or arch
    if not timm.is_model(arch):
        raise unknown_arch_error(arch)
    cfg = timm.models.get_pretrained_cfg(arch)
    cfg_dict = cfg.to_dict() if cfg is not None else {}
    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    if in_chans is not None:
        kwargs["in_chans"] = int(in_chans)
    if img_size is not None and cfg_dict.get("fixed_input_size"):
        # Fixed-size models (ViTs) build their position embedding for img_size; timm
        # resamples pretrained embeddings to it. Size-agnostic CNNs take any size as is.
        kwargs["img_size"] = int(img_size)
    notes = []
    if pretrained:
        if cfg is None:
            raise ConfigError(f"timm has no pretrained weights for {arch!r}; use pretrained=false")
        location = ensure_pretrained_weights(name, cfg_dict)
        with _hub_forced_offline():
            try:
                network = timm.create_model(arch, pretrained=True, **kwargs)
            except TypeError as exc:
                raise ConfigError(f"timm model {arch!r} rejected {sorted(kwargs)}: {exc}") from exc
        source = f"timm:{arch} ({location})"
        if num_classes is not None and num_classes != cfg_dict.get("num_classes"):
            notes.append(f"{name}: classifier head re-initialised for {num_classes} classes")
    else:
        try:
            network = timm.create_model(arch, pretrained=False, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"timm model {arch!r} rejected {sorted(kwargs)}: {exc}") from exc
        source = f"random initialisation (timm:{arch})"
    data_cfg = network.pretrained_cfg or cfg_dict
    channels, height, width = data_cfg.get("input_size", (3, 224, 224))
    if img_size is not None:
        height = width = int(img_size)
    mean = tuple(data_cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(data_cfg.get("std", (0.229, 0.224, 0.225)))
    if in_chans is not None and int(in_chans) != len(mean):
        channels = int(in_chans)
        mean = (sum(mean) / len(mean),) * channels
        std = (sum(std) / len(std),) * channels
    classes = int(network.num_classes)
    return Classifier(
        network,
        name=name,
        num_classes=classes,
        input_size=(height, width),
        mean=mean,
        std=std,
        in_channels=int(channels),
        class_names=_class_names(network, classes),
        pretrained_source=source,
        notes=notes,
    )


@models.register("timm")
def timm_model(
    arch: str, pretrained: bool = True, img_size: int | None = None, num_classes: int | None = None
) -> Classifier:
    """Any timm architecture (``arch`` may carry a pretrained tag, e.g. ``resnet18.a1_in1k``)."""
    return build_timm_classifier(
        arch, pretrained=pretrained, img_size=img_size, num_classes=num_classes
    )


@models.register("resnet18")
def resnet18(pretrained: bool = True) -> Classifier:
    """ResNet-18 with torchvision's ImageNet weights (timm ``resnet18.tv_in1k``).

    The eXIAA paper used a pretrained ResNet-18 from the PyTorch ecosystem; torchvision's
    IMAGENET1K_V1 weights are the ones such code loads by default (timm's own default tag,
    ``a1_in1k``, was trained with a different recipe).
    """
    return build_timm_classifier("resnet18.tv_in1k", name="resnet18", pretrained=pretrained)


@models.register("vit_b16")
def vit_b16(pretrained: bool = True) -> Classifier:
    """ViT-B/16 at 224 px (timm ``vit_base_patch16_224``), as in the eXIAA paper."""
    return build_timm_classifier("vit_base_patch16_224", name="vit_b16", pretrained=pretrained)
