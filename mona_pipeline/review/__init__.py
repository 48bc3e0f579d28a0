"""The review loop: a user confirms or rejects a sort's pictures, sees how right the sort was on their own
archive, applies the verdicts to the files, and teaches the next model with them.

    mona review OUT/runs/RUN      # server.py: a local page; verdicts.py stores them in the run's journal
    mona summary OUT/runs/RUN     # audit.py: precision of keep, misses of drop, a suggested threshold
    mona learn OUT/runs/RUN       # learn.py: confirmed and rejected pictures into data/raw, then dvc repro

apply.py makes the run's folders match the verdicts, journaled like a sort, reversed by `mona undo`;
pictures.py finds a judged picture's bytes (OUT, the source, or one pass over an archive).
"""
