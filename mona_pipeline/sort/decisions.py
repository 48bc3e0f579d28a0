"""What a sort decides for a picture, and which file operation follows.

Decision per picture: keep when score >= P (the confidence), review when
R <= score < P (the optional review band), drop otherwise; a picture that cannot
be read is `unreadable` and stays where it is. Operations: the request's copy,
move or link for keep and review; `delete` moves dropped pictures into the run's
trash; everything else is left alone (`none`).
"""

from __future__ import annotations

DECISIONS = ("keep", "review", "drop", "unreadable")


def decide(score: float | None, confidence: float, review_from: float | None) -> str:
    """keep | review | drop | unreadable."""
    if score is None:
        return "unreadable"
    if score >= confidence:
        return "keep"
    if review_from is not None and score >= review_from:
        return "review"
    return "drop"


def operation_for(action: str, decision: str) -> str:
    """The file operation for a request's action and a picture's decision: copy | move | link | trash | none."""
    if action in ("copy", "move", "link") and decision in ("keep", "review"):
        return action
    if action == "delete" and decision == "drop":
        return "trash"
    return "none"
