"""The command line: the composition root that parses options and wires the concrete pieces together."""

from __future__ import annotations

import typer

from shoprec.cli.common import guarded
from shoprec.cli.data import data_app
from shoprec.cli.demo import demo
from shoprec.cli.models import bench, evaluate_command, recommend, train, tune_command

app = typer.Typer(
    name="shoprec",
    help="Product recommendation: validate data, train, evaluate with full ranking, recommend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.command()(guarded(train))
app.command(name="evaluate")(guarded(evaluate_command))
app.command(name="tune")(guarded(tune_command))
app.command()(guarded(bench))
app.command()(guarded(recommend))
app.command()(guarded(demo))
