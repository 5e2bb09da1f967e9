"""A full-page PNG of an HTML report (`shoprec report`) in headless Chromium, so docs can carry a picture of it.

    .venv/bin/python scripts/screenshot_report.py runs/demo/report.html runs/demo/report.png

Drives Debian's Chromium (`apt-get install chromium`) through Playwright's Python package: Playwright's own browser
download is not needed. The page is opened from disk with every request off the file blocked, as a reader without
network would see it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1200, "height": 900}  # wide enough for the report's two example columns side by side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the report to open")
    parser.add_argument("png", type=Path, help="where the screenshot goes")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="the browser binary")
    args = parser.parse_args()
    if not args.html.is_file():
        raise SystemExit(f"{args.html} does not exist")
    if not args.chromium.exists():
        raise SystemExit(f"{args.chromium} does not exist: apt-get install chromium (or give --chromium)")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(args.chromium))
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.route("**/*", _local_only)
            page.goto(args.html.resolve().as_uri())
            page.screenshot(path=str(args.png), full_page=True)
        finally:
            browser.close()
    print(f"wrote {args.png}")


def _local_only(route: Route) -> None:
    """The report must be self-contained: anything it would fetch from elsewhere is refused."""
    if route.request.url.startswith(("file:", "data:")):
        route.continue_()
    else:
        route.abort()


if __name__ == "__main__":
    main()
