"""Model hygiene before attribution.

DeepLIFT-type methods hook activation modules; in-place activations and modules called more
than once per forward give silently wrong attributions (Captum issues #1082, #1104, #837).
In-place flags are cleared here; reuse cannot be undone generically (it lives in the
model's ``forward``), so it is detected and recorded for the explainers to act on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..types import Classifier

# Pass-through modules in eval mode: calling one twice cannot change any attribution.
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Flatten)


def clear_inplace(module: nn.Module) -> list[str]:
    """Set ``inplace=False`` wherever a submodule has a true ``inplace`` flag; their names."""
    cleared = []
    for name, submodule in module.named_modules():
        if getattr(submodule, "inplace", None) is True:
            submodule.inplace = False
            cleared.append(name)
    return cleared


def find_reused_modules(
    model: nn.Module, example: Tensor, forward: Callable[[Tensor], Tensor] | None = None
) -> list[tuple[str, int]]:
    """Leaf modules of ``model`` called more than once in one forward of ``example``.

    ``forward`` runs the pass (default ``model`` itself), e.g. a wrapper around ``model``.
    Returns ``(qualified name, calls)`` pairs in module order. Pass-through modules
    (identity, dropout, flatten) are not reported: reusing them is harmless.
    """
    calls: Counter[str] = Counter()
    handles = []
    for name, submodule in model.named_modules():
        if next(submodule.children(), None) is not None or isinstance(submodule, _PASS_THROUGH):
            continue
        handles.append(
            submodule.register_forward_hook(lambda *_, name=name: calls.update((name,)))
        )
    try:
        with torch.no_grad():
            (forward or model)(example)
    finally:
        for handle in handles:
            handle.remove()
    return [(name, calls[name]) for name, _ in model.named_modules() if calls[name] > 1]


def prepare_for_attribution(classifier: Classifier, example: Tensor | None = None) -> list[str]:
    """Clear in-place flags and record reused modules in ``classifier.reused_modules``.

    ``example`` is a pixel-space batch; by default one zero image of the model's input size.
    Returns the notes it added to ``classifier.notes`` (calling it twice adds nothing new).
    """
    notes = []
    cleared = clear_inplace(classifier)
    if cleared:
        notes.append(f"set inplace=False on {len(cleared)} modules")
    if example is None:
        example = torch.zeros(
            1, classifier.in_channels, *classifier.input_size,
            dtype=classifier.mean.dtype, device=classifier.mean.device,
        )
    was_training = classifier.training
    classifier.eval()
    # Hook the wrapped model but run the whole classifier, so the example is normalised and
    # laid out (channels-last) exactly as in real use; names are relative to ``classifier.model``.
    reused = find_reused_modules(classifier.model, example, forward=classifier)
    classifier.train(was_training)
    classifier.reused_modules = [name for name, _ in reused]
    if reused:
        listed = ", ".join(f"{name} (called {count}×)" for name, count in reused)
        notes.append(f"reused modules: {listed}")
    added = [note for note in notes if note not in classifier.notes]
    classifier.notes.extend(added)
    return added
