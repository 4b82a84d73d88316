"""The ``xaibench`` command line: run, list, show."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
    precision: Annotated[
        str | None,
        typer.Option("--precision", help="fp32 | bf16: autocast the model passes to bfloat16 (overrides the suite)."),
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="local | ray (work units as Ray tasks).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: start a local one).")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Run these models instead of the suite's (repeatable), e.g. --model efficientnet_lite0.")] = None,
    explainer: Annotated[list[str] | None, typer.Option("--explainer", "-e", help="Only these of the suite's explainers, by label (repeatable).")] = None,
    n_classes: Annotated[int | None, typer.Option("--n-classes", help="One image from each of N random classes (overrides the suite; a larger N extends a smaller one's sample).")] = None,
) -> None:
    """Run a suite: plan, compute every pending unit, write Parquet, print a summary."""
    from rich.markup import escape

    from .runner import build_plan, run_plan
    from .runner.suite import load_suite

    if executor not in ("local", "ray"):
        raise XaibenchError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    if address is not None:
        if executor != "ray":
            raise XaibenchError("--address is the address of a Ray cluster; use it with --executor ray")
        from .runner.executors.ray import check_address

        check_address(address)
    overrides = {
        "device": device, "batch_size": batch_size, "seed": seed, "limit": limit, "data": data, "precision": precision,
        "models": model, "explainers": explainer, "n_classes": n_classes,
    }
    resolved = load_suite(suite, overrides)
    console.print(f"[bold]xaibench[/bold] suite [cyan]{resolved.name}[/cyan] ({resolved.source})")
    with console.status("loading models and data…"):
        plan = build_plan(resolved, out)
    _state["interrupted"] = f"finished units are kept in {out}; re-run the same command to resume"
    pending = plan.count("pending")
    existing = plan.count("existing")
    incompatible = [u for u in plan.units if u.incompatible]
    console.print(
        f"{len(plan.units)} units on {plan.device}: {pending} to compute, {existing} already written"
        + (f", {len(incompatible)} skipped as incompatible" if incompatible else "")
    )
    for unit in {(u.model.label, u.explainer.label, u.incompatible) for u in incompatible}:
        console.print(f"  [yellow]skipped[/yellow] {unit[0]} × {unit[1]}: {unit[2]}")
    for note in plan.notes:
        console.print(f"[yellow]note[/yellow]: {escape(note)}", highlight=False)

    from .run_progress import RunProgress
    from .runner.unit_progress import reporting

    with RunProgress(plan, console) as bar, reporting(bar.explained):
        report = run_plan(plan, progress=bar.unit_done, executor=executor, address=address)

    _report_run(report, out, resolved.name)


@app.command("plan")
def plan_command(
    suite: Annotated[str, typer.Option("--suite", "-s", help="Built-in suite name or path to a .toml file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The results folder the run would write (finished units there cost nothing).")] = Path("results"),
    data: Annotated[str | None, typer.Option("--data", help="Dataset root (e.g. an ImageNet val folder).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda (overrides the suite).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N original images.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per forward/backward chunk.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Suite seed (overrides the suite).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32 | bf16 (overrides the suite).")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="These models instead of the suite's (repeatable).")] = None,
    explainer: Annotated[list[str] | None, typer.Option("--explainer", "-e", help="Only these of the suite's explainers (repeatable).")] = None,
    n_classes: Annotated[int | None, typer.Option("--n-classes", help="One image from each of N random classes.")] = None,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Time a few batches per model × explainer for the estimate.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """What a run would compute and cost: units, images, passes, disk and estimated time."""
    import json

    from .api.running import plan as plan_suite
    from .plan_table import print_plan

    overrides = {
        "device": device, "batch_size": batch_size, "seed": seed, "limit": limit, "data": data, "precision": precision,
        "models": model, "explainers": explainer, "n_classes": n_classes,
    }
    with console.status("loading models and data, probing…" if probe else "loading models and data…"):
        cost = plan_suite(suite, out, probe=probe, **{k: v for k, v in overrides.items() if v is not None})
    if as_json:
        sys.stdout.write(json.dumps(cost.record(), indent=2) + "\n")
        return
    print_plan(cost, console)


def _report_run(report, out: Path, suite_name: str) -> None:  # noqa: ANN001
    """What a run did, its summary, and every unit it could not complete (exit 1 if any failed)."""
    from .show import print_summaries

    console.print(
        f"run {report.run_id}: {report.units_done} units computed, {report.rows_written} rows written "
        f"({', '.join(f'{k} {v}' for k, v in sorted(report.rows_by_table.items())) or 'none'}), "
        f"{report.units_existing} resumed, {report.units_failed} failed, in {report.wall_s:.1f} s"
    )
    if report.manifest.get("skipped_images"):
        console.print(f"[yellow]{len(report.manifest['skipped_images'])} unreadable images skipped[/yellow] (see manifest.json)")
    print_summaries(out, console, suite_name)
    console.print(f"results: {out}/ (Parquet, manifest.json)")
    if report.units_incomplete:
        console.print(
            f"[yellow]{report.units_incomplete} units incomplete[/yellow]: some of their images could not be read; "
            "their rows are kept, and re-running after repairing the files completes them (see manifest.json)"
        )
    if report.units_leased:
        console.print(
            f"[yellow]{report.units_leased} units skipped[/yellow]: another run is computing them "
            "(see manifest.json); re-run after it ends to pick up any it did not finish"
        )
    if report.units_failed:
        if _state["debug"]:
            for unit in report.manifest["units"]:
                if unit.get("traceback"):
                    err_console.print(f"unit {unit['unit_id']} ({unit['model']} × {unit['explainer']}):", markup=False)
                    err_console.print(unit["traceback"], markup=False, highlight=False)
        err_console.print(
            f"[red]error:[/red] {report.units_failed} units failed; see {out}/manifest.json"
            + ("" if _state["debug"] else " (xaibench --debug run … prints their tracebacks)")
        )
        raise typer.Exit(1)


@app.command("list")
def list_plugins(
    kind: Annotated[str | None, typer.Argument(help="models | datasets | explainers | attacks | metrics | suites")] = None,
    pattern: Annotated[str, typer.Argument(help="Only names matching this glob, e.g. 'captum.*' or '*grad*'.")] = "*",
) -> None:
    """List every registered plugin: title, summary, origin, capabilities and typed parameters."""
    from rich.markup import escape

    from .api import list_plugins as names_of
    from .listing import plugin_traits

    kinds = [kind] if kind else [*registry.REGISTRIES, "suites"]
    for name in kinds:
        if name.rstrip("s") == "suite":
            console.print("[bold]suites[/bold]")
            for suite in names_of("suites", pattern):
                console.print(f"  {suite}")
            continue
        reg = registry.registry_for(name)
        console.print(f"[bold]{reg.kind}[/bold]")
        for plugin in names_of(name, pattern):  # the registered and the provided (captum.*, quantus.*)
            try:
                cls = reg.get(plugin)
            except XaibenchError as exc:
                console.print(f"  [red]{escape(plugin)}[/red]: {escape(str(exc))}")
                continue
            title = getattr(cls, "title", "")
            head = f"  [cyan]{escape(plugin)}[/cyan]"
            if title and title != plugin:
                head += f" — {escape(title)}"
            aliases = reg.aliases_of(plugin)
            if aliases:
                head += f" (aliases: {escape(', '.join(aliases))})"
            origin, version = reg.origin(plugin), reg.version(plugin)
            head += f" [dim]from {escape(origin)}{' ' + escape(version) if version else ''}[/dim]"
            console.print(head, highlight=False)
            summary = getattr(cls, "summary", "")
            if summary:
                console.print(f"      {summary}", markup=False, highlight=False)
            traits = plugin_traits(cls)
            if traits:
                console.print(f"      [dim]{escape(' · '.join(traits))}[/dim]", highlight=False)
            for param in reg.params(plugin):
                console.print(f"      {param.describe()}", markup=False, highlight=False)
        for plugin, message in sorted(reg.failed.items()):
            console.print(f"  [red]{escape(plugin)}: failed to import[/red] — {escape(message)}")


@app.command()
def show(results_dir: Annotated[Path, typer.Argument(help="A results folder written by 'xaibench run'.")]) -> None:
    """Summarise a results folder: its latest run and the mean ± std table of every suite in it."""
    from .show import show as show_results

    show_results(results_dir, console)


@app.command()
def leaderboard(
    results_dirs: Annotated[list[Path], typer.Argument(help="Results folders written by 'xaibench run'; a suite found in several is merged.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the site: index.html and assets/; a new or empty folder, or one xaibench made (user files are never overwritten).")] = Path("leaderboard"),
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
    _state["interrupted"] = f"{str(out)!r} was not changed (the site is built aside, then moved in)"
    with console.status("aggregating results and drawing figures…"):
        index = build_site(
            list(results_dirs), out, seed=seed, resamples=resamples, examples=examples, title=title
        )
    console.print(
        f"leaderboard: {index} ({site_size(out) / 1024:.0f} KiB); open it in a browser",
        markup=False, highlight=False,
    )


def _train_flag(key: str) -> str:
    """The ``train`` flag of a training option, for error messages (``fpa_p2`` → ``--fpa-p2``)."""
    if key == "dataset_params":
        return "--data/--dataset-param"
    return "--" + key.replace("_", "-")


def _parse_dataset_params(items: list[str]) -> dict:
    import json

    params: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--dataset-param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", "-m", help="digits_cnn, or any timm architecture (e.g. resnet18, test_resnet).")] = "digits_cnn",
    dataset: Annotated[str, typer.Option("--dataset", help="A registered dataset (digits, image_folder, imagenet).")] = "digits",
    data: Annotated[str | None, typer.Option("--data", help="Dataset root (the dataset's 'root' parameter).")] = None,
    dataset_param: Annotated[list[str] | None, typer.Option("--dataset-param", help="Other dataset parameter, KEY=VALUE (repeatable).")] = None,
    augmentation: Annotated[list[str] | None, typer.Option("--augmentation", "-a", help="none | fpa | rectangle | all; repeat to train several models.")] = None,
    adversarial: Annotated[str, typer.Option("--adversarial", help="none | pgd (PGD adversarial training).")] = "none",
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default: 20 digits_cnn, 10 digits_cnn_pgd, 10 timm).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation, shuffling, augmentation and attack.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda (timm models; digits_cnn always trains on the CPU).")] = "auto",
    img_size: Annotated[int | None, typer.Option("--img-size", help="Image side in pixels (default: 32 digits_cnn, the architecture's size for timm).")] = None,
    width: Annotated[int | None, typer.Option("--width", help="digits_cnn only: channels of the first conv.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="timm only: images per step (default 64).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="timm only: learning rate (default 0.05 sgd, 0.001 adam).")] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="timm only: sgd (momentum 0.9, cosine) | adam (AdamW).")] = None,
    pretrained: Annotated[bool | None, typer.Option("--pretrained/--no-pretrained", help="timm only: start from the hub's pretrained weights.")] = None,
    channels: Annotated[int | None, typer.Option("--channels", help="timm only: 1 or 3 input channels (default: 1 for digits, else 3).")] = None,
    holdout: Annotated[float | None, typer.Option("--holdout", help="timm only: held-out fraction when the dataset has no test split (default 0.1).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="timm only: at most N training images (seeded subset).")] = None,
    hflip: Annotated[bool | None, typer.Option("--hflip/--no-hflip", help="timm only: random horizontal flips (the paper's natural-image recipe).")] = None,
    fpa_p: Annotated[float | None, typer.Option("--fpa-p", help="FPA: probability that a mini-batch is perturbed (0.5).")] = None,
    fpa_p1_max: Annotated[float | None, typer.Option("--fpa-p1-max", help="FPA: p1 ~ U(0, p1_max), per-pixel zeroing (0.25; ImageNet 0.3).")] = None,
    fpa_p2: Annotated[float | None, typer.Option("--fpa-p2", help="FPA: per-pixel probability of a zero square (0.1; ImageNet 0.01).")] = None,
    fpa_s_max: Annotated[int | None, typer.Option("--fpa-s-max", help="FPA: largest square side (3; ImageNet 10).")] = None,
    rectangle_p: Annotated[float | None, typer.Option("--rectangle-p", help="Rectangle: probability that an image is erased (0.5).")] = None,
    pgd_epsilon: Annotated[float | None, typer.Option("--pgd-epsilon", help="PGD: L∞ radius in pixel units (0.1).")] = None,
    pgd_steps: Annotated[int | None, typer.Option("--pgd-steps", help="PGD: steps (5; step size 2.5·ε/steps).")] = None,
    pgd_clean_weight: Annotated[float | None, typer.Option("--pgd-clean-weight", help="PGD: weight of the clean loss (0.5; 0 = pure adversarial).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain even when the model is in the cache (replaces it).")] = False,
) -> None:
    """Train models with FPA / Rectangle augmentation or PGD adversarial training; cached."""
    from .training.runs import TRAIN_AUGMENTATIONS, plan_training

    chosen = augmentation or ["none"]
    unknown = [a for a in chosen if a not in (*TRAIN_AUGMENTATIONS, "all")]
    if unknown:
        raise typer.BadParameter(
            f"{unknown[0]!r} is not one of none, fpa, rectangle, all", param_hint="--augmentation"
        )
    if adversarial not in ("none", "pgd"):
        raise typer.BadParameter(f"{adversarial!r} is not one of none, pgd", param_hint="--adversarial")
    dataset_params = _parse_dataset_params(dataset_param or [])
    if data is not None:
        dataset_params["root"] = data
    # Every run's values are checked before the first one trains.
    plan = plan_training(
        model, dataset, augmentations=chosen, adversarial=adversarial, epochs=epochs, seed=seed,
        device=device, img_size=img_size, width=width, dataset_params=dataset_params,
        option_name=_train_flag, batch_size=batch_size, lr=lr, optimizer=optimizer,
        pretrained=pretrained, channels=channels, holdout=holdout, limit=limit, hflip=hflip,
        fpa_p=fpa_p, fpa_p1_max=fpa_p1_max, fpa_p2=fpa_p2, fpa_s_max=fpa_s_max,
        rectangle_p=rectangle_p, pgd_epsilon=pgd_epsilon, pgd_steps=pgd_steps,
        pgd_clean_weight=pgd_clean_weight,
    )
    for note in plan.notes:
        console.print(f"[yellow]note[/yellow]: {note}")

    def report(epoch: int, total: int, loss: float) -> None:
        console.print(f"  epoch {epoch}/{total}: last batch loss {loss:.3f}", highlight=False)

    for job in plan.jobs:
        if job.is_digits:
            with console.status(f"training {job.model}…"):
                trained = job.run(force=force)
        else:
            console.print(
                f"[bold]{job.arch}[/bold] on {job.dataset}, augmentation {job.augmentation}, "
                f"adversarial {job.adversarial}"
            )
            trained = job.run(force=force, progress=report)
        state = (
            "[green]already trained[/green] (cache hit)" if trained.cached
            else f"trained in {trained.info.get('train_seconds')} s"
        )
        console.print(f"[cyan]{trained.name}[/cyan] ({job.augmentation}, adversarial {job.adversarial}): {state}")
        for line in trained.report():
            console.print(line, markup=False, highlight=False)

def _error(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message.replace('[', chr(92) + '[')}")


def _interrupted() -> None:
    err_console.print(f"[yellow]interrupted[/yellow]: {_state.get('interrupted', 'nothing was changed')}")
    sys.exit(130)


def main() -> None:
    import click

    from .cli_start import one_line_warning, start_guarded
    from .files import output_error

    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
    debug = "--debug" in sys.argv
    start_guarded(sys.argv)
    if not debug:
        warnings.showwarning = one_line_warning(err_console)
    try:
        # standalone_mode=False: typer would turn Ctrl-C into a silent exit 130 (click into
        # "Aborted!") before this handler sees it; here it returns 130 instead.
        code = app(standalone_mode=False)
        if code == 130:
            _interrupted()
    except click.exceptions.Abort:
        _interrupted()
    except KeyboardInterrupt:
        _interrupted()
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except XaibenchError as exc:
        if _state["debug"] or debug:
            raise
        _error(str(exc))
        sys.exit(2)
    except OSError as exc:  # a file system that refuses a write, outside the runner's own checks
        if _state["debug"] or debug:
            raise
        _error(str(output_error(exc, "the output")))
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
