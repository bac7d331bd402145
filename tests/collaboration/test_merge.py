"""The three-way text merge (collaboration/merge.py): which changes merge, and into what."""

from __future__ import annotations

import pytest

from collaboration import merge

TEN_LINES = "".join(f"Day {i}: walk.\n" for i in range(1, 11))
PARAGRAPH = "We land at nine. The hotel is near the river. Dinner at Ana's."


def lines(text: str, **changed: str) -> str:
    """TEN_LINES-like text with line n (1-based, as `l3="..."`) replaced."""
    out = text.splitlines(keepends=True)
    for key, value in changed.items():
        out[int(key[1:]) - 1] = value
    return "".join(out)


CASES = {
    # name: (base, current (someone else's change), proposed (the stale change), merged or None)
    "different lines": (
        TEN_LINES,
        lines(TEN_LINES, l2="Day 2: museum.\n"),
        lines(TEN_LINES, l7="Day 7: beach.\n"),
        lines(TEN_LINES, l2="Day 2: museum.\n", l7="Day 7: beach.\n"),
    ),
    "adjacent lines": (
        TEN_LINES,
        lines(TEN_LINES, l4="Day 4: train.\n"),
        lines(TEN_LINES, l5="Day 5: boat.\n"),
        lines(TEN_LINES, l4="Day 4: train.\n", l5="Day 5: boat.\n"),
    ),
    "different sentences of one line": (
        PARAGRAPH,
        "We land at ten. The hotel is near the river. Dinner at Ana's.",
        "We land at nine. The hotel is near the river. Dinner at Rui's.",
        "We land at ten. The hotel is near the river. Dinner at Rui's.",
    ),
    "neighbouring sentences": (
        PARAGRAPH,
        "We land at ten. The hotel is near the river. Dinner at Ana's.",
        "We land at nine. The hotel is by the sea. Dinner at Ana's.",
        "We land at ten. The hotel is by the sea. Dinner at Ana's.",
    ),
    "same sentence, different words": (
        PARAGRAPH,
        "We land at ten. The hotel is near the river. Dinner at Ana's.",
        "We land at nine sharp. The hotel is near the river. Dinner at Ana's.",
        None,
    ),
    "same line": (
        TEN_LINES,
        lines(TEN_LINES, l3="Day 3: rest.\n"),
        lines(TEN_LINES, l3="Day 3: hike.\n"),
        None,
    ),
    "identical changes are taken once": (
        TEN_LINES,
        lines(TEN_LINES, l3="Day 3: rest.\n"),
        lines(TEN_LINES, l3="Day 3: rest.\n", l9="Day 9: fly home.\n"),
        lines(TEN_LINES, l3="Day 3: rest.\n", l9="Day 9: fly home.\n"),
    ),
    "insertions at the same point": (
        "One.\nTwo.\n",
        "One.\nOne and a half.\nTwo.\n",
        "One.\nOne point five.\nTwo.\n",
        None,
    ),
    "identical insertions at the same point": (
        "One.\nTwo.\n",
        "One.\nOne and a half.\nTwo.\n",
        "One.\nOne and a half.\nTwo.\nThree.\n",
        "One.\nOne and a half.\nTwo.\nThree.\n",
    ),
    "insertions at different points": (
        "One.\nTwo.\nThree.\n",
        "Zero.\nOne.\nTwo.\nThree.\n",
        "One.\nTwo.\nThree.\nFour.\n",
        "Zero.\nOne.\nTwo.\nThree.\nFour.\n",
    ),
    "insertion next to an edited line": (
        "One.\nTwo.\nThree.\n",
        "One.\nTWO.\nThree.\n",
        "One.\nTwo.\nTwo and a bit.\nThree.\n",
        "One.\nTWO.\nTwo and a bit.\nThree.\n",
    ),
    "delete against edit of the same line": (
        TEN_LINES,
        lines(TEN_LINES, l6=""),
        lines(TEN_LINES, l6="Day 6: market.\n"),
        None,
    ),
    "delete against edit of the next line": (
        TEN_LINES,
        lines(TEN_LINES, l6=""),
        lines(TEN_LINES, l7="Day 7: market.\n"),
        lines(TEN_LINES, l6="", l7="Day 7: market.\n"),
    ),
    "a line added after a last line without a line break": (
        "One.\nTwo.",
        "One.\nTWO.",
        "One.\nTwo.\nThree.",
        "One.\nTWO.\nThree.",
    ),
    "a trailing line break added on one side": (
        "One.\nTwo.",
        "One.\nTwo.\n",
        "ONE.\nTwo.",
        "ONE.\nTwo.\n",
    ),
    "empty base, both write": ("", "Pack socks.", "Book the train.", None),
    "empty base, one writes": ("", "Pack socks.", "", "Pack socks."),
    "unicode sentences": (
        "Café à neuf heures. Musée ensuite. 東京で寿司。大阪でたこ焼き。\n🚆 then 🛳️.\n",
        "Café à dix heures. Musée ensuite. 東京で寿司。大阪でたこ焼き。\n🚆 then 🛳️.\n",
        "Café à neuf heures. Musée ensuite. 東京で寿司。京都で抹茶。\n🚆 then 🛳️.\n",
        "Café à dix heures. Musée ensuite. 東京で寿司。京都で抹茶。\n🚆 then 🛳️.\n",
    ),
    "a rewrite against any change": (
        TEN_LINES,
        lines(TEN_LINES, l10="Day 10: home.\n"),
        "Everything changed.\n",
        None,
    ),
    "the stale side changed nothing": (
        TEN_LINES,
        lines(TEN_LINES, l1="Day 1: arrive.\n"),
        TEN_LINES,
        lines(TEN_LINES, l1="Day 1: arrive.\n"),
    ),
    "the other side put the base back": (
        TEN_LINES,
        TEN_LINES,
        lines(TEN_LINES, l1="Day 1: arrive.\n"),
        lines(TEN_LINES, l1="Day 1: arrive.\n"),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_merge(case):
    base, current, proposed, expected = CASES[case]
    assert merge.merge(base, current, proposed) == expected


@pytest.mark.parametrize("case", [c for c, (*_, merged) in CASES.items() if merged is not None])
def test_which_side_is_which_does_not_change_a_merge(case):
    base, current, proposed, expected = CASES[case]
    assert merge.merge(base, proposed, current) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("One. Two!  Three?\n", ["One. ", "Two!  ", "Three?\n"]),
        ("3.5 km. e.g.this", ["3.5 km. ", "e.g.this"]),
        ('He said "go." Then left.', ['He said "go." ', "Then left."]),
        ("Para one.\n\n\nPara two.", ["Para one.\n\n\n", "Para two."]),
        ("\n\nFirst.", ["\n\n", "First."]),
        ("東京。大阪。\r\nend", ["東京。", "大阪。\r\n", "end"]),
        ("Ends with a space. ", ["Ends with a space. "]),
    ],
)
def test_tokens_are_sentences_and_lines_that_join_back_into_the_text(text, expected):
    assert merge.tokens(text) == expected
    assert "".join(merge.tokens(text)) == text


def test_texts_too_costly_to_diff_do_not_merge():
    """Thousands of repeats of one line make the diff's work grow with their square: past
    MAX_DIFF_WORK the texts are not merged, instead of holding the trip's lock for seconds."""
    base = "x.\n" * 3000
    current = "first.\n" + base + "last.\n"
    proposed = "y.\n" + "x.\n" * 2998 + "z.\n"
    assert merge.hunks(merge.tokens(base), merge.tokens(proposed)) is None
    assert merge.merge(base, current, proposed) is None
    small = "x.\n" * 10
    merged = merge.merge(small, "first.\n" + small, small + "last.\n")
    assert merged == "first.\n" + small + "last.\n"
