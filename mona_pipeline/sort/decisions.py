"""What a sort decides for a picture, and which file operation follows.

Decision per picture: keep when score >= P (the confidence), review when
R <= score < P (the optional review band), drop otherwise; a picture that cannot
be read is `unreadable` and stays where it is. Operations: the request's copy,
move or link for keep and review; `delete` moves dropped pictures into the run's
trash; everything else is left alone (`none`).

With several models (one per character) a picture has a decision per target, and
its own decision is the best of them (keep, then review, then drop). It is copied
or linked under each target it matches; `move` moves it under the last of them and
copies it under the others (it can be moved only once); `delete` trashes it only
when every target drops it.
"""

from __future__ import annotations

DECISIONS = ("keep", "review", "drop", "unreadable")  # also their rank: a picture's decision is its targets' best


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


def operations_for(action: str, decisions: list[str]) -> list[str]:
    """The file operation of each target's row, for a picture scored by several models (see the module)."""
    if action == "delete":
        trash = all(decision == "drop" for decision in decisions)
        return ["trash" if trash and index == 0 else "none" for index in range(len(decisions))]
    operations = [operation_for(action, decision) for decision in decisions]
    if action == "move":
        moved = [index for index, operation in enumerate(operations) if operation == "move"]
        for index in moved[:-1]:
            operations[index] = "copy"
    return operations
