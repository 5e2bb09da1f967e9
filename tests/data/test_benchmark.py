"""The benchmark reader on a real slice of Amazon Beauty, clean and deliberately corrupted."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shoprec.data.benchmark import interactions_per_item, is_benchmark_dir, read_benchmark
from shoprec.data.dataset import Dataset, empty_catalog
from shoprec.data.rejects import SchemaError
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.types import Sequences, Vocabulary


def first_lines(directory: Path) -> list[list[str]]:
    return [line.split() for line in (directory / "sequences.txt").read_text().splitlines()]


def raw_titles(directory: Path) -> dict[str, str]:
    with gzip.open(directory / "items.jsonl.gz", "rt", encoding="utf-8") as handle:
        return {str(r["item_id"]): r["title"] for r in map(json.loads, handle) if isinstance(r["title"], str)}


def test_counts_match_the_first_2000_lines(beauty: Dataset, beauty_dir: Path) -> None:
    lines = first_lines(beauty_dir)
    assert len(lines) == beauty.n_users == 2000
    assert beauty.sequences.n_interactions == sum(len(tokens) - 1 for tokens in lines)
    assert beauty.n_items == len({item for tokens in lines for item in tokens[1:]})
    assert beauty.items.ids_of(beauty.sequences.row(0)) == lines[0][1:]
    assert interactions_per_item(beauty)[0] == 0 and interactions_per_item(beauty).sum() == len(beauty.sequences.items)


def test_titles_are_html_unescaped(beauty: Dataset, beauty_dir: Path) -> None:
    raw = raw_titles(beauty_dir)
    assert "&amp;" in raw["8"] and "&quot;" in raw["25"]
    assert beauty.title(beauty.items.index("8")) == "Freeman Facial Charcoal & Black Sugar Polish Mask 6 oz."
    assert beauty.title(beauty.items.index("25")).startswith('World Pride Fashionable 23" Straight')
    titles = [title for title in beauty.catalog["title"] if isinstance(title, str)]
    assert not any("&amp;" in title or "&quot;" in title for title in titles)


def test_include_uninteracted_adds_cold_start_items(beauty_dir: Path, pseudonymize: Pseudonymizer) -> None:
    dataset, _ = read_benchmark(beauty_dir, pseudonymize, include_uninteracted=True)
    assert dataset.n_items == len(raw_titles(beauty_dir)) + 7  # the 7 items without a title are there too
    assert (interactions_per_item(dataset)[1:] == 0).any()


@pytest.fixture
def corrupted(beauty_dir: Path, tmp_path: Path) -> Path:
    """The slice with four bad lines inserted: lines 3, 6, 9 and 12 of the new file."""
    target = tmp_path / "corrupted"
    target.mkdir()
    shutil.copy(beauty_dir / "items.jsonl.gz", target / "items.jsonl.gz")
    lines = (beauty_dir / "sequences.txt").read_text().splitlines()
    bad = {3: "", 6: "90001 1 999999 2", 9: f"{lines[0].split()[0]} 5 6", 12: "90002"}
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    (target / "sequences.txt").write_text("\n".join(lines) + "\n")
    return target


def test_corrupted_copy_loads_good_lines_and_reports_bad_ones(corrupted: Path, pseudonymize: Pseudonymizer) -> None:
    dataset, report = read_benchmark(corrupted, pseudonymize)

    assert dataset.n_users == report.loaded == 2000
    assert [(reject.line, reject.reason) for reject in report.rejects] == [
        (3, "empty line"),
        (6, "unknown item '999999'"),
        (9, "duplicate user '1' (first line kept)"),
        (12, "user has no items"),
    ]
    assert all(reject.file == str(corrupted / "sequences.txt") for reject in report.rejects)
    assert report.rejects[1].raw == "90001 1 999999 2"


def test_not_a_benchmark_folder(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    assert not is_benchmark_dir(tmp_path)
    with pytest.raises(SchemaError, match=r"sequences\.txt"):
        read_benchmark(tmp_path, pseudonymize)


def test_category_matrix_groups_items_by_one_level_of_their_path() -> None:
    catalog = empty_catalog(4)
    catalog["category"] = ["Beauty > Makeup > Nails > Polish", "Beauty > Makeup > Nails", "Beauty > Skin", None]
    dataset = Dataset(
        "hand", Vocabulary.from_ids("abcd"), Vocabulary.from_ids(["u"]), Sequences.from_lists([1], [[1, 2]]), catalog
    )
    matrix = dataset.category_matrix()
    assert matrix is not None and matrix.shape == (5, 2)  # "Nails" and "Skin" (a shorter path: its last level)
    assert not matrix[0].any() and not matrix[4].any()  # padding and the uncategorised item
    assert (matrix[1] == matrix[2]).all() and matrix[1].sum() == 1 and (matrix[1] != matrix[3]).any()
    catalog["category"] = None
    assert dataset.category_matrix() is None


def test_the_beauty_slice_has_categories_for_the_audit(beauty: Dataset) -> None:
    matrix = beauty.category_matrix()
    assert matrix is not None and matrix.shape[0] == beauty.items.size
    assert set(matrix.sum(axis=1)[1:]) <= {0.0, 1.0} and matrix[1:].sum() > 0.9 * beauty.n_items


def test_movielens_users_dat_gives_each_user_gender_age_and_occupation(tmp_path: Path) -> None:
    (tmp_path / "sequences.txt").write_text("7 1 2 3\n8 2 3\n9 1 3\n")
    (tmp_path / "users.dat").write_text(
        "8::F::25::12::02139\n7::M::1::10::48067\n99::F::56::0::10001\nbroken line\n9::X::25::99::00000\n"
    )
    pseudonymize = Pseudonymizer(b"k" * 32)
    dataset, report = read_benchmark(tmp_path, pseudonymize)
    assert [(r.line, r.reason) for r in report.rejects] == [
        (4, "expected UserID::Gender::Age::Occupation::Zip-code"),
        (5, "gender, age or occupation is not a GroupLens code"),
    ]
    attributes = dataset.user_attributes
    assert attributes is not None and list(attributes.columns) == ["gender", "age", "occupation"]
    by_raw = {raw: attributes.loc[dataset.users.index(pseudonymize(raw))].tolist() for raw in ("7", "8", "9")}
    assert by_raw == {
        "7": ["male", "under 18", "K-12 student"],
        "8": ["female", "25-34", "programmer"],
        "9": [None, None, None],  # its only line is rejected; user 99 is not in the sequences and is dropped
    }
    assert len(attributes) == 3  # the zip code is nowhere
    (tmp_path / "users.dat").unlink()
    assert read_benchmark(tmp_path, pseudonymize)[0].user_attributes is None


def test_unisrec_text_gives_the_title_and_the_brand(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    """UniSRec's item text is "title. categories. brand. ": the brand (the last sentence) is the provider the audit
    and the brand filter use; a title with its own full stops keeps them."""
    records = [
        {"item_id": 0, "text": "eSUN Bronze filament 1.75mm. Industrial & Scientific 3D Printing Filament. eSUN. "},
        {"item_id": 1, "text": "Wine Tannin - 1 oz. . Midwest Homebrewing and Winemaking Supplies. "},
        {"item_id": 2, "text": "A title alone. "},
    ]
    with gzip.open(tmp_path / "items.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(record) for record in records) + "\n")
    (tmp_path / "sequences.txt").write_text("0 0 1 2\n1 2 1 0\n")
    dataset, _ = read_benchmark(tmp_path, pseudonymize)
    brands = {dataset.items.id_of(index): brand for index, brand in dataset.catalog["brand"].items()}
    assert brands == {"0": "eSUN", "1": "Midwest Homebrewing and Winemaking Supplies", "2": None}
    assert dataset.title(dataset.items.index("1")) == "Wine Tannin - 1 oz"


def test_providers_are_brands_or_else_categories(beauty: Dataset) -> None:
    """Beauty has no brands: its providers are the audit's categories, the same grouping as category_matrix."""
    codes = beauty.provider_codes()
    categories = beauty.category_matrix()
    assert codes is not None and categories is not None and codes[0] == -1
    categorised = categories.any(axis=1)
    np.testing.assert_array_equal(codes[categorised], categories[categorised].argmax(axis=1))
    assert (codes[~categorised] == -1).all()
