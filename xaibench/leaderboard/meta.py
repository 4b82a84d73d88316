"""What the runs recorded about their plugins, merged per suite: the leaderboard's only source
of plugin knowledge (it never imports the registry).

Every manifest (``manifest.json`` and ``runs/<run id>.json``) written by this xaibench has a
top-level ``"plugins"`` block: per kind (``attacks``, ``metrics``, ``explainers``, ``models``)
and per label, the plugin's name, its resolved parameters and its declared metadata (title,
direction, unit, digits, category, grid axes, reference point, baseline relation,
capabilities; docs/leaderboard.md). The blocks of all runs of a suite are merged, the first
run's entry winning (a note says when runs disagree).

Results written before plugin metadata existed fall back on what the rows and the suite
block say: the label is the title; a robustness metric is a column of the robustness rows
named in the suite's metric list, with an unknown direction (shown, not ranked); a
faithfulness metric's direction is the rows' ``higher_is_better``; an attack has no grid axes
(no figure), its rows are taken at the suite's ``reference`` when it names one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RERUN = "rerun with this xaibench to record plugin metadata"
KINDS = ("attacks", "metrics", "explainers", "models")
# Keys whose disagreement between runs changes what the leaderboard shows.
_COMPARED = ("title", "higher_is_better", "category", "grid_axes", "reference", "baseline_of", "digits", "unit")
FAITHFULNESS = "faithfulness"


@dataclass(frozen=True)
class MetricInfo:
    """A metric as recorded (or as far as the rows tell, ``recorded`` False)."""

    label: str
    title: str
    higher_is_better: bool | None = None
    unit: str = ""
    digits: int | None = None
    category: str | None = None
    summary: str = ""
    needs: tuple[str, ...] = ()
    value_range: tuple[float | None, float | None] = (None, None)
    recorded: bool = False

    @property
    def has_direction(self) -> bool:
        return self.higher_is_better is not None

    @property
    def arrow(self) -> str:
        return "" if self.higher_is_better is None else "↑" if self.higher_is_better else "↓"

    @property
    def compares_explanations(self) -> bool:
        """Whether the metric reads the explanations (not only images or predictions)."""
        return any(str(need).startswith("expl") for need in self.needs)

    def direction_text(self) -> str:
        if self.higher_is_better is None:
            return "direction not recorded"
        return f"{'higher' if self.higher_is_better else 'lower'} is better for the explainer"


@dataclass(frozen=True)
class AttackInfo:
    """An attack as recorded: its grid axes, its reference point and where that comes from
    (``"suite"``, ``"largest grid point"``, ``"attack"`` (its own declaration) or ``""``)."""

    label: str
    name: str
    title: str
    grid_axes: tuple[str, ...] = ()
    reference: dict[str, Any] = field(default_factory=dict)
    reference_source: str = ""
    baseline_of: str | None = None
    axis_titles: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    recorded: bool = False

    @property
    def point_axes(self) -> tuple[str, ...]:
        """The columns a reference point is taken over: the grid axes, or (without metadata)
        the axes the suite's reference names."""
        return self.grid_axes or tuple(self.reference)


@dataclass(frozen=True)
class ExplainerInfo:
    label: str
    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    has_completeness: bool | None = None
    convergence_param: str | None = None
    recorded: bool = False


def _finite_point(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int | float):
            if item == item and abs(float(item)) != float("inf"):
                out[str(key)] = float(item)
        else:
            out[str(key)] = item
    return out


def _largest(grid: Any, axes: Sequence[str]) -> dict[str, Any]:
    """The grid's largest point comparing the axes in order (the default reference point)."""
    points = [p for p in grid or [] if isinstance(p, Mapping) and all(a in p for a in axes)]
    if not points or not axes:
        return {}
    try:
        best = max(points, key=lambda p: tuple(float(p[a]) for a in axes))
    except (TypeError, ValueError):
        return {}
    return _finite_point({a: best[a] for a in axes})


def _same_point(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for key, value in a.items():
        try:
            if abs(float(value) - float(b[key])) > 1e-12:
                return False
        except (TypeError, ValueError):
            if str(value) != str(b[key]):
                return False
    return True


def _suite_specs(manifest: Mapping[str, Any], plural: str) -> list[Mapping[str, Any]]:
    specs = (manifest.get("suite") or {}).get(plural) or []
    return [s for s in specs if isinstance(s, Mapping) and (s.get("label") or s.get("name"))]


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


@dataclass
class PluginMeta:
    """The merged ``plugins`` blocks of a suite's manifests, and the suite blocks' plugin
    lists for results that predate them."""

    recorded: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    suite_metrics: list[str] = field(default_factory=list)  # labels, suite order, any category
    suite_attacks: dict[str, str] = field(default_factory=dict)  # label -> plugin name
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_manifests(cls, manifests: Iterable[Mapping[str, Any]]) -> PluginMeta:
        meta = cls()
        for manifest in manifests:
            meta.add(manifest)
        return meta

    def add(self, manifest: Mapping[str, Any]) -> None:
        """Merge one manifest (the first entry of a label wins; disagreements are noted)."""
        block = manifest.get("plugins")
        kinds = [*KINDS, *(k for k in block if k not in KINDS)] if isinstance(block, Mapping) else []
        for kind in kinds:
            entries = block.get(kind)
            for label, entry in (entries or {}).items() if isinstance(entries, Mapping) else ():
                if isinstance(entry, Mapping):
                    self._merge(kind, str(label), dict(entry))
        for spec in _suite_specs(manifest, "metrics"):
            label = str(spec.get("label") or spec.get("name"))
            if label not in self.suite_metrics:
                self.suite_metrics.append(label)
        for spec in _suite_specs(manifest, "attacks"):
            self.suite_attacks.setdefault(str(spec.get("label") or spec.get("name")), str(spec.get("name") or ""))

    def _merge(self, kind: str, label: str, entry: dict[str, Any]) -> None:
        known = self.recorded.setdefault(kind, {})
        if label not in known:
            known[label] = entry
            return
        differ = [k for k in _COMPARED if k in entry and k in known[label] and entry[k] != known[label][k]]
        if differ:
            note = (
                f"runs disagree on the recorded {', '.join(differ)} of {kind[:-1]} {label!r}; "
                "the first run's is used"
            )
            if note not in self.notes:
                self.notes.append(note)

    # -- metrics -------------------------------------------------------------------------

    def metric(self, label: str) -> MetricInfo:
        entry = self.recorded["metrics"].get(label)
        if entry is None:
            return MetricInfo(label=label, title=label)
        low, high = (list(entry.get("range") or []) + [None, None])[:2]
        digits = entry.get("digits")
        return MetricInfo(
            label=label,
            title=str(entry.get("title") or label),
            higher_is_better=_optional_bool(entry.get("higher_is_better")),
            unit=str(entry.get("unit") or ""),
            digits=int(digits) if isinstance(digits, int | float) and not isinstance(digits, bool) else None,
            category=str(entry["category"]) if entry.get("category") else None,
            summary=str(entry.get("summary") or ""),
            needs=tuple(str(n) for n in entry.get("needs") or ()),
            value_range=(low, high),
            recorded=True,
        )

    def metric_order(self) -> list[str]:
        """Metric labels in suite order (recorded first, then the suite blocks' lists)."""
        return list(dict.fromkeys([*self.recorded["metrics"], *self.suite_metrics]))

    def robustness_metrics(self, columns: Iterable[str]) -> list[MetricInfo]:
        """The suite's robustness metrics that have a column in the robustness rows, in suite
        order; a metric recorded as a faithfulness metric is not one."""
        present = set(columns)
        out = []
        for label in self.metric_order():
            info = self.metric(label)
            if label in present and info.category != FAITHFULNESS:
                out.append(info)
        return out

    def faithfulness_order(self, labels: Iterable[str]) -> list[str]:
        """``labels`` (faithfulness metrics found in the rows) in suite order; any the
        manifests do not list after them, alphabetically."""
        found = [str(m) for m in labels]
        known = [m for m in self.metric_order() if m in found]
        return known + sorted(m for m in found if m not in known)

    # -- attacks -------------------------------------------------------------------------

    def attack_name(self, label: str, fallback: str | None = None) -> str:
        entry = self.recorded["attacks"].get(label) or {}
        return str(entry.get("name") or fallback or self.suite_attacks.get(label) or label)

    def attack(
        self, label: str, *, name: str | None = None, suite_reference: Mapping[str, Any] | None = None
    ) -> AttackInfo:
        """``suite_reference``: the suite block's ``reference`` (only when the suite named
        one): the point an attack without metadata is taken at, and the source of a
        recorded point on the axes it names."""
        suite_point = _finite_point(suite_reference)
        entry = self.recorded["attacks"].get(label)
        if entry is None:
            return AttackInfo(
                label=label, name=self.attack_name(label, name), title=label, reference=suite_point,
                reference_source="suite" if suite_point else "",
            )
        axes = tuple(str(a) for a in entry.get("grid_axes") or ())
        reference = _finite_point(entry.get("reference"))
        if suite_point and set(suite_point) & set(axes):
            source = "suite"
        elif not reference or _same_point(reference, _largest(entry.get("grid"), axes)):
            source = "largest grid point"
        else:
            source = "attack"
        titles = entry.get("axis_titles")
        return AttackInfo(
            label=label,
            name=self.attack_name(label, name),
            title=str(entry.get("title") or label),
            grid_axes=axes,
            reference=reference,
            reference_source=source,
            baseline_of=str(entry["baseline_of"]) if entry.get("baseline_of") else None,
            axis_titles={str(k): str(v) for k, v in titles.items()} if isinstance(titles, Mapping) else {},
            summary=str(entry.get("summary") or ""),
            recorded=True,
        )

    # -- every plugin --------------------------------------------------------------------

    def listing(self) -> list[dict[str, str]]:
        """One line per recorded plugin (kind, label, title, plugin name, where it comes
        from, summary, resolved parameters), for the provenance part and the markdown."""
        out = []
        for kind, entries in self.recorded.items():
            for label, entry in entries.items():
                source = " ".join(str(entry[k]) for k in ("distribution", "version") if entry.get(k))
                params = entry.get("params")
                out.append({
                    "kind": kind[:-1] if kind.endswith("s") else kind,
                    "label": label,
                    "title": str(entry.get("title") or label),
                    "name": str(entry.get("name") or label),
                    "source": source,
                    "summary": str(entry.get("summary") or ""),
                    "params": ", ".join(f"{k} = {v}" for k, v in params.items()) if isinstance(params, Mapping) else "",
                })
        return out

    # -- explainers ----------------------------------------------------------------------

    def explainer(self, label: str) -> ExplainerInfo:
        entry = self.recorded["explainers"].get(label)
        if entry is None:
            return ExplainerInfo(label=label, name=label, title=label)
        params = entry.get("params")
        return ExplainerInfo(
            label=label,
            name=str(entry.get("name") or label),
            title=str(entry.get("title") or entry.get("name") or label),
            params=dict(params) if isinstance(params, Mapping) else {},
            has_completeness=_optional_bool(entry.get("has_completeness")),
            convergence_param=str(entry["convergence_param"]) if entry.get("convergence_param") else None,
            recorded=True,
        )
