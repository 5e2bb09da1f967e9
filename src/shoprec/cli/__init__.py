"""The command line: the composition root that parses options and wires the concrete pieces together."""

from __future__ import annotations

import logging

import typer
from rich.logging import RichHandler

from shoprec.cli.assist import ask_app, chat
from shoprec.cli.audit import audit_app
from shoprec.cli.common import console, guarded
from shoprec.cli.data import data_app
from shoprec.cli.demo import demo
from shoprec.cli.models import bench, evaluate_command, recommend, train, tune_command
from shoprec.cli.privacy import forget, retrain, store_app
from shoprec.cli.report import report
from shoprec.cli.serve import serve

app = typer.Typer(
    name="shoprec",
    help="Product recommendation: validate data, train, evaluate with full ranking, recommend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors in the log.")) -> None:
    """Our log lines (training epochs, server events) go to stderr beside the progress bars; other libraries
    speak only when something is wrong."""
    handler = RichHandler(console=console, show_path=False, log_time_format="%H:%M:%S")
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    logging.getLogger("shoprec").setLevel(logging.WARNING if quiet else logging.INFO)


app.add_typer(data_app, name="data")
app.add_typer(ask_app, name="ask")
app.add_typer(store_app, name="store")
app.add_typer(audit_app, name="audit")
app.command()(guarded(train))
app.command(name="evaluate")(guarded(evaluate_command))
app.command(name="tune")(guarded(tune_command))
app.command()(guarded(bench))
app.command()(guarded(recommend))
app.command()(guarded(report))
app.command()(guarded(demo))
app.command()(guarded(serve))
app.command()(guarded(chat))
app.command()(guarded(forget))
app.command()(guarded(retrain))
