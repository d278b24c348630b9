"""The files baseline: a bare Flask app that stores an upload and serves bytes with `send_file`.

`bench/files.py` runs it under the Procfile's gunicorn settings
(`gunicorn -c python:backend.gunicorn_conf bench.files_baseline_app:app`) beside the real app,
to show what the server stack alone does with the same bytes on this machine:

- `POST /upload`: a multipart upload (field `file`) written to `$BASELINE_UPLOAD_DIR/upload.bin`
  with `FileStorage.save` (Werkzeug's default form parsing, no size limit, no hashing);
- `PUT /put`: a raw body (what an upload URL takes) copied to `$BASELINE_UPLOAD_DIR/put.bin`
  in 1 MiB chunks with `shutil.copyfileobj` (no size limit, no hashing);
- `GET /blob/<key>?type=<media type>`: `flask.send_file` of the app's stored object `<key>`
  under `$BASELINE_FILES_DIR` (the app's `FILES_DIR`), so both servers send the same file;
- `GET /ping`: readiness.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from flask import Flask, abort, request, send_file
from flask.typing import ResponseReturnValue

KEY = re.compile(r"\A[0-9a-f]{64}\Z")
FILES_DIR = Path(os.environ.get("BASELINE_FILES_DIR", "."))
UPLOAD_DIR = Path(os.environ.get("BASELINE_UPLOAD_DIR", "."))

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = None


@app.get("/ping")
def ping() -> dict[str, Any]:
    """Answer readiness checks."""
    return {"ok": True}


@app.post("/upload")
def upload() -> ResponseReturnValue:
    """Save the multipart field `file` to disk; return its size."""
    part = request.files.get("file")
    if part is None:
        abort(400)
    target = UPLOAD_DIR / "upload.bin"
    part.save(target)
    return {"size": target.stat().st_size}, 201


@app.put("/put")
def put() -> ResponseReturnValue:
    """Copy the raw request body to disk; return its size."""
    target = UPLOAD_DIR / "put.bin"
    with target.open("wb") as out:
        shutil.copyfileobj(request.stream, out, 1024 * 1024)
    return {"size": target.stat().st_size}, 201


@app.get("/blob/<key>")
def blob(key: str) -> ResponseReturnValue:
    """Send a stored object of the app by its key (ranges and conditional requests included)."""
    if not KEY.match(key):
        abort(404)
    path = FILES_DIR / key[:2] / key[2:4] / key
    return send_file(path, mimetype=request.args.get("type", "application/octet-stream"))
