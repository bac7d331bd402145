"""Three-way merges of free text by sentences and lines: pure functions, no database.

Two people who changed different sentences (or lines) of the same base text both keep their
change, even where the sentences are neighbours; two changes to one sentence do not merge. The
diff is Python's difflib.SequenceMatcher over the texts' sentence tokens; this module only decides
which of its hunks can stand together (docs/decisions.md, "Merges of free text").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

# A sentence ends at . ! ? or … (closing quotes or brackets included) followed by spaces, or at a
# CJK full stop, with more text after it on the line. A line's own break ends its last sentence.
_SENTENCE_END = re.compile(
    r"(?:[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*\s+"  # then closing quotes, brackets
    r"|[\u3002\uff01\uff1f]+\s*)"  # CJK full stop, exclamation, question
    r"(?=\S)"
)
# What str.splitlines() splits on: the end of a line.
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# SequenceMatcher's cost grows with how often each token of one side occurs in the other (10,000
# blank lines against themselves take 12 s). Its work for one pass is bounded by the sum, over the
# changed region of one text, of each token's occurrences in the other: past this, about 0.1 s
# here, the texts are not merged (a conflict, as before merges) rather than hold the trip's lock.
MAX_DIFF_WORK = 1_000_000


def tokens(text: str) -> list[str]:
    """`text` as sentences and lines, in order; joined they give `text` back. Blank lines belong
    to the token before them."""
    found: list[str] = []
    for line in text.splitlines(keepends=True):
        if found and not line.strip():
            found[-1] += line
            continue
        start = 0
        for end in _SENTENCE_END.finditer(line):
            found.append(line[start : end.end()])
            start = end.end()
        found.append(line[start:])
    return found


@dataclass(frozen=True, order=True)
class Hunk:
    """A change of the base's tokens [start, end) (an insertion when start == end) into
    `replacement`."""

    start: int
    end: int
    replacement: tuple[str, ...]

    def clashes_with(self, other: Hunk) -> bool:
        """Whether the two touch the same base token, or insert at the same point. Identical
        hunks never clash: both sides made the same change, which is taken once."""
        if self == other:
            return False
        if self.start == self.end and other.start == other.end:
            return self.start == other.start
        if self.start == self.end:
            return other.start < self.start < other.end
        if other.start == other.end:
            return self.start < other.start < self.end
        return max(self.start, other.start) < min(self.end, other.end)


def hunks(base: list[str], other: list[str]) -> list[Hunk] | None:
    """The changes from `base` to `other`, in order; None when diffing them would cost more than
    MAX_DIFF_WORK. Consecutive hunks always have an unchanged token between them."""
    head = 0
    limit = min(len(base), len(other))
    while head < limit and base[head] == other[head]:
        head += 1
    tail = 0
    while tail < limit - head and base[-1 - tail] == other[-1 - tail]:
        tail += 1
    old, new = base[head : len(base) - tail], other[head : len(other) - tail]
    occurrences = Counter(new)
    if sum(occurrences[token] for token in old) > MAX_DIFF_WORK:
        return None
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    return [
        Hunk(head + i1, head + i2, tuple(new[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def _clash(theirs: list[Hunk], mine: list[Hunk]) -> bool:
    """Whether any hunk of one side clashes with one of the other. Each side's hunks are in order
    with a gap between them, so a walk that moves past whichever ends first meets every pair that
    could clash."""
    i = j = 0
    while i < len(theirs) and j < len(mine):
        a, b = theirs[i], mine[j]
        if a.clashes_with(b):
            return True
        if a.end <= b.end:
            i += 1
        if b.end <= a.end:
            j += 1
    return False


def _open_end(text: str) -> bool:
    """Whether the text's last line has no line break."""
    return bool(text) and text[-1] not in _LINE_BREAKS


def merge(base: str, current: str, proposed: str) -> str | None:
    """`current` with the changes `proposed` made to `base`, or None when they touch a sentence
    (or line) that `current` also changed differently, or insert at the same point."""
    if proposed in (current, base):
        return current
    if current == base:
        return proposed
    # Each text's last line is compared with its line break, so that adding a line after a last
    # line without one is not a change of that line; whether the result ends with a line break
    # is then merged on its own.
    texts = [text + "\n" if _open_end(text) else text for text in (base, current, proposed)]
    base_tokens = tokens(texts[0])
    theirs = hunks(base_tokens, tokens(texts[1]))
    mine = hunks(base_tokens, tokens(texts[2]))
    if theirs is None or mine is None or _clash(theirs, mine):
        return None
    merged: list[str] = []
    position = 0
    for hunk in sorted(set(theirs) | set(mine)):
        merged.extend(base_tokens[position : hunk.start])
        merged.extend(hunk.replacement)
        position = hunk.end
    merged.extend(base_tokens[position:])
    text = "".join(merged)
    open_end = _open_end(proposed) if _open_end(proposed) != _open_end(base) else _open_end(current)
    if open_end and text.endswith("\n"):
        text = text[:-1]
    return text
