"""`decodeprof profile TARGET [-- target flags]`: capture a target under nsys (and ncu) into a run folder."""

from __future__ import annotations

from pathlib import Path

import typer


from decodeprof.capture.ncu import DEFAULT_STEPS, MAX_STEPS


def register(app: typer.Typer) -> None:
    @app.command(
        "profile",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def profile(
        ctx: typer.Context,
        target: str = typer.Argument(..., help="Target label (see `python -m decodeprof_targets --list`)."),
        nsys: bool = typer.Option(True, "--nsys/--no-nsys", help="Capture an Nsight Systems trace and export it to SQLite."),
        ncu: bool = typer.Option(False, "--ncu", help="Also run once under Nsight Compute: decode kernels of one measured iteration -> ncu.csv."),
        out: Path = typer.Option(Path("runs"), "--out", help="Folder that receives the run folder <target>-<YYYYmmdd-HHMMSS>."),
        ncu_steps: int = typer.Option(DEFAULT_STEPS, "--ncu-steps", min=1, max=MAX_STEPS, help="Decode steps the Nsight Compute run profiles (its time grows with them: about a minute at the default on an H200)."),
        gpus: int = typer.Option(1, "--gpus", min=1, max=64, help="GPUs: more than 1 launches the target through torchrun."),
        unprofiled: bool = typer.Option(True, "--unprofiled/--no-unprofiled", help="First run the target once without any profiler (metrics.unprofiled.json): the times the report shows."),
    ) -> None:
        """Run TARGET under Nsight Systems (and with --ncu, Nsight Compute), export, analyse.

        Flags after `--` go to the target, e.g. `decodeprof profile graph -- --steps 64`.
        Every artefact lands in a new run folder under --out; nothing is overwritten.
        """
        from decodeprof.capture import profile_target
        from decodeprof.outputs import writable_folder

        writable_folder(out, "run folder")
        profile_target(target, list(ctx.args), out_dir=out, nsys=nsys, ncu=ncu, gpus=gpus, unprofiled=unprofiled,
                       ncu_steps=ncu_steps, analyse=analyse_run)


def analyse_run(run_dir: Path, console) -> dict:
    """After a capture: print the analysis tables and write report.html into the run folder;
    returns its run.json step fields. Where the analysis stack (polars, plotly) is not
    installed, e.g. a bare GPU box, the capture still succeeds and says how to analyse the
    folder elsewhere."""
    try:
        from decodeprof.commands.analyze import print_analyses
        from decodeprof.report import assemble, load_variant, write_report
    except ModuleNotFoundError as exc:
        console.print(f"analysis skipped ({exc.name} is not installed here): copy {run_dir} and run "
                      f"`decodeprof report {run_dir}` where decodeprof is installed", markup=False)
        return {"exit_status": None, "skipped": f"{exc.name} not installed"}
    with console.status("analysing ..."):
        variant = load_variant(run_dir)
    print_analyses(variant.trace, variant.frames)  # tables on stdout; progress stays on stderr
    report = write_report(assemble([variant]), run_dir / "report.html")
    console.print(f"report: {report}", markup=False)
    console.print(f"again later: decodeprof analyze {run_dir}", markup=False)
    return {"exit_status": 0}
