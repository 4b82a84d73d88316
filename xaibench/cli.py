"""The ``xaibench`` command line: run, list, show."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import registry
from .errors import XaibenchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark the robustness and faithfulness of post-hoc explanations.",
)
# Logs and CI are not terminals: rich would squeeze the summary into 80 columns there.
console = Console(width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 240)
_state = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def run(
    suite: Annotated[str, typer.Option("--suite", "-s", help="Built-in suite name or path to a .toml file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder (Parquet + manifest).")] = Path("results"),
    data: Annotated[str | None, typer.Option("--data", help="Dataset root (e.g. an ImageNet val folder).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda (overrides the suite).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N original images.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per forward/backward chunk.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Suite seed (overrides the suite).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local | ray (work units as Ray tasks).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: start a local one).")] = None,
) -> None:
    """Run a suite: plan, compute every pending unit, write Parquet, print a summary."""
    from .runner.engine import build_plan, run_plan
    from .runner.suite import load_suite

    if executor not in ("local", "ray"):
        raise XaibenchError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    overrides = {"device": device, "batch_size": batch_size, "seed": seed, "limit": limit, "data": data}
    resolved = load_suite(suite, overrides)
    console.print(f"[bold]xaibench[/bold] suite [cyan]{resolved.name}[/cyan] ({resolved.source})")
    with console.status("loading models and data…"):
        plan = build_plan(resolved, out)
    pending = sum(1 for u in plan.units if u.state == "pending")
    existing = sum(1 for u in plan.units if u.state == "existing")
    incompatible = [u for u in plan.units if u.state == "incompatible"]
    console.print(
        f"{len(plan.units)} units on {plan.device}: {pending} to compute, {existing} already written"
        + (f", {len(incompatible)} skipped as incompatible" if incompatible else "")
    )
    for unit in {(u.model.label, u.explainer.label, u.reason) for u in incompatible}:
        console.print(f"  [yellow]skipped[/yellow] {unit[0]} × {unit[1]}: {unit[2]}")

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("units", total=pending, rate="")
        rows = {"n": 0}

        def advance(unit, done: int, total: int) -> None:  # noqa: ANN001
            rows["n"] += unit.rows
            elapsed = progress.tasks[task].elapsed or 1e-9
            progress.update(
                task,
                completed=done,
                description=f"{unit.model.label} × {unit.explainer.label}",
                rate=f"{rows['n'] / elapsed:.1f} rows/s",
            )

        report = run_plan(plan, progress=advance, executor=executor, address=address)

    console.print(
        f"run {report.run_id}: {report.units_done} units computed, {report.rows_written} rows written "
        f"({', '.join(f'{k} {v}' for k, v in sorted(report.rows_by_table.items())) or 'none'}), "
        f"{report.units_existing} resumed, {report.units_failed} failed, in {report.wall_s:.1f} s"
    )
    if report.manifest.get("skipped_images"):
        console.print(f"[yellow]{len(report.manifest['skipped_images'])} unreadable images skipped[/yellow] (see manifest.json)")
    _print_summaries(out, resolved.name)
    console.print(f"results: {out}/ (Parquet, manifest.json)")
    if report.units_failed:
        err_console.print(f"[red]error:[/red] {report.units_failed} units failed; see {out}/manifest.json")
        raise typer.Exit(1)


@app.command("list")
def list_plugins(
    kind: Annotated[str | None, typer.Argument(help="models | datasets | explainers | attacks | metrics | suites")] = None,
) -> None:
    """List every registered plugin with its parameters and defaults."""
    from .runner.suite import builtin_suites

    kinds = [kind] if kind else [*registry.REGISTRIES, "suites"]
    for name in kinds:
        if name.rstrip("s") == "suite":
            console.print("[bold]suites[/bold]")
            for suite in builtin_suites():
                console.print(f"  {suite}")
            continue
        reg = registry.registry_for(name)
        console.print(f"[bold]{reg.kind}[/bold]")
        for plugin in reg.names():
            aliases = reg.aliases_of(plugin)
            origin = reg.origin(plugin)
            head = f"  [cyan]{plugin}[/cyan]"
            if aliases:
                head += f" (aliases: {', '.join(aliases)})"
            if origin != "xaibench":
                head += f" [dim]from {origin}[/dim]"
            console.print(head)
            for param in reg.params(plugin):
                console.print(f"      {param.describe()}", markup=False)
        for plugin, message in sorted(reg.failed.items()):
            console.print(f"  [red]{plugin}: failed to import[/red] — {message}", markup=True)


@app.command()
def show(results_dir: Annotated[Path, typer.Argument(help="A results folder written by 'xaibench run'.")]) -> None:
    """Summarise a results folder: its manifest and the mean ± std table."""
    from .runner.results import read_manifest
    manifest = read_manifest(results_dir)
    if manifest is None and not Path(results_dir).is_dir():
        raise XaibenchError(f"results folder {str(results_dir)!r} does not exist")
    if manifest:
        env = manifest.get("environment", {})
        states: dict[str, int] = {}
        for unit in manifest.get("units", []):
            states[unit["state"]] = states.get(unit["state"], 0) + 1
        console.print(
            f"last run {manifest.get('run_id')} ({manifest.get('started')}), suite "
            f"{manifest.get('suite', {}).get('suite', {}).get('name')}, device {env.get('device')}, "
            f"torch {env.get('torch')}, units {states}"
        )
        for model, info in manifest.get("models", {}).items():
            console.print(f"  {model}: weights from {info.get('pretrained_source')}")
    if not _print_summaries(results_dir, None):
        raise XaibenchError(f"no results in {str(results_dir)!r}: run 'xaibench run --out {results_dir}' first")


def _print_summaries(results_dir: Path, suite: str | None) -> bool:
    """Print the robustness and faithfulness summaries that exist; False if there are none."""
    from .runner.results import has_table, read_results
    from .runner.summary import (
        render_faithfulness,
        render_summary,
        summarize,
        summarize_faithfulness,
    )

    printed = False
    if has_table(results_dir, "robustness"):
        frame = read_results(results_dir, suite, table="robustness")
        console.print(f"{len(frame)} robustness rows in {results_dir}")
        render_summary(summarize(frame), console, title="Robustness: mean ± std over rows")
        printed = True
    if has_table(results_dir, "faithfulness"):
        frame = read_results(results_dir, suite, table="faithfulness")
        console.print(f"{len(frame)} faithfulness rows in {results_dir}")
        render_faithfulness(summarize_faithfulness(frame), console, title="Faithfulness: mean ± std, rank per metric")
        printed = True
    return printed


@app.command()
def leaderboard(
    results_dirs: Annotated[list[Path], typer.Argument(help="Results folders written by 'xaibench run'; a suite found in several is merged.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the site: index.html and assets/.")] = Path("leaderboard"),
    output_format: Annotated[str, typer.Option("--format", "-f", help="html (write a site to --out) | markdown (print the overview tables).")] = "html",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap confidence intervals.")] = 0,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples of the images per interval.")] = 2000,
    examples: Annotated[int, typer.Option("--examples", help="Example images shown per model × explainer.")] = 3,
    title: Annotated[str, typer.Option("--title", help="Title of the page.")] = "xaibench leaderboard",
) -> None:
    """Build the leaderboard: a static site (or markdown tables) from one or more results folders."""
    from .leaderboard import build_leaderboard, build_site, render_markdown, site_size

    fmt = output_format.lower()
    if fmt not in ("html", "markdown", "md"):
        raise XaibenchError(f"--format must be 'html' or 'markdown', got {output_format!r}")
    if resamples < 0 or examples < 0:
        raise XaibenchError("--resamples and --examples must be non-negative")
    if fmt in ("markdown", "md"):
        board = build_leaderboard(list(results_dirs), seed=seed, resamples=resamples)
        sys.stdout.write(render_markdown(board))
        return
    with console.status("aggregating results and drawing figures…"):
        index = build_site(
            list(results_dirs), out, seed=seed, resamples=resamples, examples=examples, title=title
        )
    console.print(
        f"leaderboard: {index} ({site_size(out) / 1024:.0f} KiB); open it in a browser",
        markup=False, highlight=False,
    )


def main() -> None:
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
    try:
        app()
    except XaibenchError as exc:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        message = str(exc).replace("[", r"\[")
        err_console.print(f"[red]error:[/red] {message}")
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]: finished units are kept; re-run to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
