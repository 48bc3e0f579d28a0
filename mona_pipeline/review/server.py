"""`mona review OUT/runs/RUN`: a local page to confirm or reject a sort's pictures, see how right the sort was
on this archive, and apply the verdicts to the files.

    server = ReviewServer(run_dir, port=0)       # 127.0.0.1, a free port unless one is given
    server.url                                   # printed, and opened in a browser where there is a display
    server.serve()                               # until Ctrl-C

FastAPI (already in the environment through Prefect) serves one plain HTML page (page.html, no build step) and a
small JSON API; uvicorn runs it. Every verdict is written to the run's journal before the API answers
(verdicts.py), so the page holds nothing the journal does not: a reload, a second tab or a killed server
loses nothing. Applying takes the run's lock like a sort or an undo does (apply.py).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from fastapi import Body, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from mona_pipeline.review import apply, audit, verdicts
from mona_pipeline.review.pictures import PictureGone, PictureStore
from mona_pipeline.sort.journal import open_run
from mona_pipeline.sort.lock import RunBusy, holder
from mona_pipeline.sort.runs import read_run

PAGE = Path(__file__).with_name("page.html")
PER_PAGE = 48


def row_json(row: verdicts.Row, verdict: str | None, position: int | None = None) -> dict:
    return {"id": row.item_id, "name": row.name, "score": row.score, "decision": row.decision, "box": row.box,
            "verdict": verdict, "status": row.status, "target": row.target, "position": position}


def create_app(run_dir: Path, target_precision: float = 0.95) -> FastAPI:
    """The review page's app for one run (see the module)."""
    run_dir = run_dir.absolute()
    journal = open_run(run_dir)
    store = PictureStore(run_dir, journal)
    app = FastAPI(title=f"mona review {run_dir.name}", docs_url=None, redoc_url=None, openapi_url=None)
    queues: dict[str | None, list[str]] = {}
    held: dict[str | None, verdicts.RunRows] = {}

    def rows_of(target: str | None) -> verdicts.RunRows:
        """The target's rows, read again only after a file operation changed the journal (RunRows)."""
        if target not in held or not held[target].fresh(journal):
            held[target] = verdicts.RunRows.read(journal, target)
        return held[target]

    def queue_of(target: str | None) -> list[str]:
        if target not in queues:
            queues[target] = verdicts.review_queue(journal, target)
            # pictures no local file holds (archive members) are read once, in one pass, in the background
            threading.Thread(target=store.prefetch, args=(queues[target],), daemon=True).start()
        return queues[target]

    def chosen(target: str | None) -> str | None:
        names = verdicts.targets(journal)
        if target in (None, "") or names == [None]:
            return names[0]
        if target not in names:
            raise HTTPException(404, f"the run has no target {target!r}; it has {', '.join(map(str, names))}")
        return target

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/state")
    def state(target: str | None = None) -> dict:
        target = chosen(target)
        record = read_run(run_dir)
        result = audit.estimate(journal, target, target_precision, rows_of(target))
        queue = queue_of(target)
        judged = verdicts.current(journal)
        return {"run": run_dir.name, "path": str(run_dir), "source": record.info.get("source"),
                "action": record.info.get("action"), "state": record.state, "target": result.target,
                "targets": [name for name in verdicts.targets(journal) if name],
                "counts": {decision: result.rates[decision].size for decision in verdicts.AUDITED},
                "queue_length": len(queue), "reviewed_in_queue": sum(1 for item in queue if item in judged),
                "reviewed": result.reviewed, "audit": result.lines(),
                "suggestion": result.suggestion.threshold, "confidence": record.info.get("confidence")}

    @app.get("/api/queue")
    def queue(target: str | None = None) -> list[dict]:
        target = chosen(target)
        by_id = rows_of(target).by_id
        judged = verdicts.current(journal)
        return [row_json(by_id[item], judged.get(item), position) for position, item in enumerate(queue_of(target))]

    @app.get("/api/rows")
    def rows(decision: str = "keep", page: int = Query(0, ge=0), per_page: int = Query(PER_PAGE, ge=1, le=500),
             target: str | None = None) -> dict:
        if decision not in verdicts.AUDITED:
            raise HTTPException(400, f"decision {decision!r}: use one of {', '.join(verdicts.AUDITED)}")
        found = rows_of(chosen(target)).by_decision[decision]
        judged = verdicts.current(journal)
        part = found[page * per_page:(page + 1) * per_page]
        return {"decision": decision, "page": page, "pages": max(1, -(-len(found) // per_page)), "total": len(found),
                "rows": [row_json(row, judged.get(row.item_id)) for row in part]}

    @app.get("/api/picture")
    def picture(id: str, size: str = "full") -> Response:
        try:
            data = store.thumbnail(id) if size == "thumb" else store.read(id)
        except PictureGone as error:
            raise HTTPException(404, str(error)) from None
        kind = "image/jpeg" if size == "thumb" else picture_type(data)
        return Response(data, media_type=kind, headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/verdict")
    def verdict(id: str = Body(...), verdict: str = Body(...), queued: bool = Body(True)) -> dict:
        try:
            verdicts.mark(journal, id, verdict, queued)
        except verdicts.VerdictError as error:
            raise HTTPException(400, str(error)) from None
        return {"id": id, "verdict": verdict}

    @app.post("/api/undo")
    def undo_mark() -> dict:
        item = verdicts.withdraw_last(journal)
        return {"id": item, "verdict": verdicts.current(journal).get(item) if item else None}

    @app.post("/api/apply")
    def apply_now() -> dict:
        try:
            result = apply.apply_verdicts(run_dir)
        except RunBusy as error:
            raise HTTPException(409, str(error)) from None
        held.clear()  # apply wrote through a connection of its own; read the rows again either way
        return {"lines": result.lines(), "changed": result.changed, "problems": len(result.problems)}

    app.state.journal = journal
    return app


def picture_type(data: bytes) -> str:
    """The media type of a picture's bytes (browsers show jpeg, png, gif, webp, bmp; tiff as a download)."""
    heads = {b"\xff\xd8": "image/jpeg", b"\x89PNG": "image/png", b"GIF8": "image/gif", b"BM": "image/bmp",
             b"II*\x00": "image/tiff", b"MM\x00*": "image/tiff"}
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for head, kind in heads.items() if data.startswith(head)), "application/octet-stream")


class ReviewServer:
    """The page for one run on 127.0.0.1 (see the module)."""

    def __init__(self, run_dir: Path, port: int = 0, target_precision: float = 0.95):
        import uvicorn

        busy = holder(run_dir)
        if busy:
            raise RunBusy(f"run {run_dir} is in use by {busy}; review it once that is done")
        self.app = create_app(run_dir, target_precision)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))

    def serve(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.app.state.journal.close()
