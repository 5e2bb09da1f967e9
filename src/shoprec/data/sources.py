"""One entry point that turns whatever path the operator gives into a Dataset and a report of rejected rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shoprec.data.benchmark import SEQUENCES_FILE, is_benchmark_dir, read_benchmark
from shoprec.data.dataset import Dataset
from shoprec.data.readers import TABLE_SUFFIXES, build_dataset, read_catalog, read_events, table_suffix
from shoprec.data.rejects import LoadReport, SchemaError, write_rejects
from shoprec.privacy.consent import Admission

EXPECTED = (
    f"a benchmark folder (with {SEQUENCES_FILE}), a folder with events{{{','.join(TABLE_SUFFIXES)}}} "
    "(and optionally catalog.* in the same formats), or a single events file in one of those formats"
)


def load_source(
    path: Path,
    pseudonymize: Callable[[str], str],
    rejects_path: Path | None = None,
    admission: Admission | None = None,
) -> tuple[Dataset, LoadReport]:
    """Load ``path`` (any of EXPECTED). Rejected rows go to ``rejects_path`` (default: beside the input,
    ``<name>.rejects.jsonl``) so they can be fixed and loaded again; a source with no usable row is an error.
    ``admission`` says which users may be loaded at all (default: all but those whose data says no consent)."""
    path = Path(path)
    if is_benchmark_dir(path):
        dataset, report = read_benchmark(path, pseudonymize, admission=admission)
        _write_rejects(report, rejects_path or default_rejects_path(path))
        return dataset, report
    name, events_file, catalog_file = _locate(path)
    catalog, report = read_catalog(catalog_file) if catalog_file else (None, LoadReport())
    # Catalog first, so that events naming an item the catalog lacks are rejected rather than invented.
    known = None if catalog is None else set(catalog.index)
    events, events_report = read_events(events_file, pseudonymize, known, admission)
    report.merge(events_report)
    target = rejects_path or default_rejects_path(path)
    _write_rejects(report, target)
    if events.empty:
        raise SchemaError(f"{events_file}: no usable event ({report.rejected} rejected rows, see {target})")
    return build_dataset(name, events, catalog), report


def default_rejects_path(path: Path) -> Path:
    """``<name>.rejects.jsonl`` inside a source folder, or beside a single source file."""
    if path.is_dir():
        return path / f"{path.name}.rejects.jsonl"
    suffix = table_suffix(path) or path.suffix
    return path.parent / f"{path.name[: len(path.name) - len(suffix)]}.rejects.jsonl"


def _locate(path: Path) -> tuple[str, Path, Path | None]:
    """(dataset name, events file, catalog file or None)."""
    if path.is_dir():
        events_file = _table_in(path, "events")
        if events_file is None:
            raise SchemaError(f"{path}: found neither {SEQUENCES_FILE} nor an events file; expected {EXPECTED}")
        return path.name, events_file, _table_in(path, "catalog")
    suffix = table_suffix(path)
    if not path.is_file() or suffix is None:
        raise SchemaError(f"{path}: not a readable source; expected {EXPECTED}")
    return path.name[: -len(suffix)], path, None


def _table_in(directory: Path, stem: str) -> Path | None:
    found = [directory / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES if (directory / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise SchemaError(f"{directory}: several {stem} files ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def _write_rejects(report: LoadReport, target: Path) -> None:
    if report.rejects:
        write_rejects(report.rejects, target)
