"""What `mediad reextract` accepts as a selection, and the patterns its --ext becomes."""

from __future__ import annotations

import pytest

from mediad.reextract import Selection, SelectionError, like_suffixes


def test_a_selection_needs_a_filter_or_all() -> None:
    with pytest.raises(SelectionError, match="--mapping-below N, --container X, --ext EXT"):
        Selection()
    assert Selection(everything=True).params() == {
        "mapping_below": None,
        "containers": None,
        "classes": None,
        "suffixes": None,
    }


def test_all_with_a_filter_is_refused() -> None:
    with pytest.raises(SelectionError, match="--all selects every done row"):
        Selection(everything=True, containers=("JPEG",))


@pytest.mark.parametrize("below", [0, -3])
def test_mapping_below_starts_at_one(below: int) -> None:
    with pytest.raises(SelectionError, match="--mapping-below must be 1 or more"):
        Selection(mapping_below=below)


@pytest.mark.parametrize("ext", ["", ".", "a/b", "x\x00"])
def test_an_extension_is_a_name_without_slash(ext: str) -> None:
    with pytest.raises(SelectionError, match="is not an extension"):
        Selection(extensions=(ext,))


def test_extensions_with_or_without_the_dot_are_one_suffix() -> None:
    assert like_suffixes([".jpg", "jpg", "JPG", ".JPG"]) == ("%.jpg", "%.JPG")
    assert Selection(extensions=(".jpg", "jpg")).params()["suffixes"] == ["%.jpg"]


def test_like_characters_in_an_extension_are_escaped() -> None:
    assert like_suffixes(["m_v", "a%b", "c\\d"]) == ("%.m\\_v", "%.a\\%b", "%.c\\\\d")


def test_filters_become_parameters_without_repeats() -> None:
    params = Selection(
        mapping_below=2, containers=("JPEG", "JPEG", "PNG"), classes=("corrupt",)
    ).params()
    assert params == {
        "mapping_below": 2,
        "containers": ["JPEG", "PNG"],
        "classes": ["corrupt"],
        "suffixes": None,
    }
