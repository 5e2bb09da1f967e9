"""`shoprec report` on a small trained model: one self-contained file of its validation figures, checked in a real
headless browser (Debian's Chromium through Playwright)."""

from __future__ import annotations

import importlib
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Route, sync_playwright
from typer.testing import CliRunner

from shoprec.cli import app
from shoprec.evaluation.protocol import EvalResult
from shoprec.models.artifact import load_artifact

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("SHOPREC_REQUIRE_BROWSER") == "1"  # CI sets it: there, a missing browser fails
runner = CliRunner()
report_module = importlib.import_module("shoprec.cli.report")  # the package's `report` attribute is the command


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def tradeoffs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two trade-off records: one knob, and two knobs set at once."""
    one = [{"diversity": d, "seconds": 1.0, "NDCG@10": 0.08 - d / 20, "ILD@10": 0.6 + d / 4} for d in (0, 0.5, 0.7)]
    two = [
        {"diversity": d, "tail_share": t, "seconds": 1.0, "NDCG@10": 0.08 - d / 20 - t / 30, "ILD@10": 0.6 + d / 4}
        for d in (0.0, 0.5)
        for t in (0.0, 0.2)
    ]
    folder = tmp_path_factory.mktemp("tradeoff")
    for name, rows in (("diversity", one), ("grid", two)):
        record = {"data": "amazon_beauty", "model": "itemknn", "split": "validation", "rows": rows}
        (folder / f"{name}.json").write_text(json.dumps(record))
    return folder / "diversity.json", folder / "grid.json"


@pytest.fixture(scope="module")
def written(
    trained: Path, beauty_dir: Path, tradeoffs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    code, output = invoke(
        "report", "--data", beauty_dir, "--model-dir", trained, "--out", out,
        "--tradeoff", tradeoffs[0], "--tradeoff", tradeoffs[1], "--examples", "2",
    )  # fmt: skip
    assert code == 0, output
    return out


def test_report_is_one_file_of_the_models_validation_figures(written: Path, trained: Path) -> None:
    """The figures are those the model was selected on (its held-out last items), as its manifest records them."""
    document = written.read_text()
    assert "validation targets" in document and "itemknn" in document
    _, _, manifest = load_artifact(trained)
    hr = f"{manifest.metrics['HR@10']:.4f}"
    assert re.search(rf'<td>HR</td><td class="num">[\d.]+</td><td class="num">{hr}</td>', document), hr
    assert document.count('<img src="data:image/png;base64,') == 2
    assert not re.search(r"https?://", document)
    assert document.count('<article class="example">') == 2
    assert "after re-ranking (diversity 0.5, tail_share 0.1)" in document


def test_results_file_is_shown_instead_with_its_split(trained: Path, beauty_dir: Path, tmp_path: Path) -> None:
    result = EvalResult(metrics={"HR@10": 0.9876, "NDCG@10": 0.5432}, n_users=7)
    results = tmp_path / "evaluate.json"
    results.write_text(json.dumps({"valid": result.to_dict(), "test": result.to_dict()}))
    out = tmp_path / "report.html"
    code, output = invoke(
        "report", "--data", beauty_dir, "--model-dir", trained, "--out", out, "--results", results, "--examples", "0"
    )
    assert code == 0, output
    document = out.read_text()
    assert "test split, from evaluate.json" in document and "0.9876" in document and "0.5432" in document


@pytest.mark.parametrize(
    ("option", "value"), [("--diversity", "1.5"), ("--tail-share", "-0.1"), ("--popularity-correction", "2")]
)
def test_a_knob_outside_0_1_fails_naming_the_option(
    option: str, value: str, trained: Path, beauty_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    code, output = invoke("report", "--data", beauty_dir, "--model-dir", trained, "--out", out, option, value)
    assert code != 0 and option in output and not out.exists()


def test_diversity_and_calibration_together_fail(trained: Path, beauty_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    args = ("--diversity", "0.5", "--calibration", "0.5")
    code, output = invoke("report", "--data", beauty_dir, "--model-dir", trained, "--out", out, *args)
    assert code != 0 and "--calibration" in output and "alternatives" in output and not out.exists()


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium) for the browser test"
        if REQUIRE_BROWSER:
            pytest.fail(f"SHOPREC_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return CHROMIUM


def test_report_opens_in_a_browser_without_errors_and_is_not_blank(chromium: Path, written: Path) -> None:
    errors: list[str] = []
    fetched: list[str] = []

    def local_only(route: Route) -> None:
        fetched.append(route.request.url)
        route.continue_() if route.request.url.startswith(("file:", "data:")) else route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium))
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.route("**/*", local_only)
            page.goto(written.as_uri())
            png = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in fetched), fetched
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.height > 900, "the full page, not the viewport"
    colours = image.getcolors(maxcolors=image.width * image.height) or []
    assert len(colours) > 50, "a blank (or nearly blank) page"
    assert max(count for count, _ in colours) < 0.95 * image.width * image.height
