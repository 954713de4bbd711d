"""Import a curate labeling batch into a real Label Studio on loopback and check what it got.

Starts ``label-studio start`` (installed in its own venv: ``python -m venv /tmp/ls-venv &&
/tmp/ls-venv/bin/pip install label-studio``; never into curate's environment) with a fresh data
dir, a user and an API token created non-interactively, waits for ``/health``, creates a project
whose ``label_config`` is the export's ``labeling-config.xml``, imports the tasks JSON
(``POST /api/projects/<id>/import``) and checks the task and prediction counts Label Studio
reports against the file, then that an imported task's data and prediction are intact.

Without ``--export`` it makes one: the demo digits workspace, perceptual embeddings, and
``curate select --strategy similar --probe`` mined from 10 test images (the first 400 test images
labeled; the linear probe's guesses become predictions), exported with ``--document-root`` so
Label Studio serves the images from local files.

    python scripts/check_labelstudio.py --label-studio /tmp/ls-venv/bin/label-studio
    python scripts/check_labelstudio.py --export round1/tasks.json --port 8091
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote


def api(base: str, token: str, method: str, path: str, body: object | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500].decode(errors='replace')}") from None


def make_export(folder: Path) -> tuple[Path, Path]:
    """Demo digits -> workspace -> similar mining from 10 test images -> Label Studio export."""
    from curate.demo import build_demo
    from curate.embed.stage import EmbedConfig, embed
    from curate.ingest import IngestConfig, ingest
    from curate.select.stage import select, select_config
    from curate.workspace import Workspace

    build_demo(str(folder / "demo"))
    ws = Workspace(str(folder / "ws"))
    ingest(ws, [str(folder / "demo" / "images")], IngestConfig())
    embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
    ids = [i for i, s in zip(ws.read_manifest(["id"]).column("id").to_pylist(),
                             ws.read_manifest(["split"]).column("split").to_pylist()) if s == "test"]
    (folder / "queries.txt").write_text("\n".join(ids[::36][:10]) + "\n")  # test images of several classes
    (folder / "labeled.txt").write_text("\n".join(i for i in ids[:400] if i not in ids[::36][:10]) + "\n")
    out = folder / "batch" / "tasks.json"
    result = select(ws, select_config(budget=40, strategy="similar", queries=str(folder / "queries.txt"),
                                     labeled=str(folder / "labeled.txt"), probe=True, out=str(out),
                                     document_root=str(folder / "demo")))
    print(f"mined {len(result.picked)} items for 10 queries -> {out}")
    return out, folder / "demo"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label-studio", default=os.environ.get("CURATE_LABEL_STUDIO", "label-studio"))
    p.add_argument("--export", default=None, help="tasks JSON written by curate select (labeling-config.xml beside it)")
    p.add_argument("--document-root", default=None, help="the --document-root the export was made with")
    p.add_argument("--port", type=int, default=8089)
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="curate-ls-"))
    export, root = (Path(args.export), args.document_root) if args.export else make_export(tmp)
    config = (export.parent / "labeling-config.xml").read_text()
    tasks = json.loads(export.read_text())
    with_pred = sum(1 for t in tasks if t.get("predictions"))
    print(f"export: {len(tasks)} tasks ({with_pred} with predictions), config {len(config)} bytes")

    token = secrets.token_hex(20)
    env = dict(os.environ, LABEL_STUDIO_USERNAME="curate@example.com", LABEL_STUDIO_PASSWORD="curate-check-pw",
               LABEL_STUDIO_USER_TOKEN=token, LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
               LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",  # the --user-token is a legacy token (1.23: off by default)
               LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false")  # loopback only: no PyPI / analytics calls
    if root:
        env.update(LOCAL_FILES_SERVING_ENABLED="true", LOCAL_FILES_DOCUMENT_ROOT=str(Path(root).resolve()))
    cmd = [args.label_studio, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(args.port),
           "--data-dir", str(tmp / "ls-data"), "--username", env["LABEL_STUDIO_USERNAME"],
           "--password", env["LABEL_STUDIO_PASSWORD"], "--user-token", token]
    log = (tmp / "label-studio.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{args.port}"
    try:
        start = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"label-studio exited ({proc.returncode}); log: {tmp / 'label-studio.log'}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - start > args.timeout:
                raise SystemExit(f"no /health after {args.timeout:.0f}s; log: {tmp / 'label-studio.log'}")
            time.sleep(2)
        version = api(base, token, "GET", "/api/version")
        print(f"label-studio {version.get('release', version) if isinstance(version, dict) else version} up in "
              f"{time.monotonic() - start:.0f}s on {base}")
        project = api(base, token, "POST", "/api/projects", {"title": "curate check", "label_config": config})
        pid = project["id"]
        print(f"project {pid} created with labeling-config.xml (label config accepted)")
        if root:  # Label Studio serves /data/local-files/ only under a Local Files storage of the project,
            # whose path must be a sub-folder of the document root: the top folder of the exported paths
            tops = {unquote(str(t["data"].get("image", "")).partition("?d=")[2]).split("/")[0] for t in tasks}
            folder = Path(root).resolve() / tops.pop() if len(tops) == 1 else Path(root).resolve()
            storage = api(base, token, "POST", "/api/storages/localfiles",
                          {"project": pid, "title": "curate images", "path": str(folder), "use_blob_urls": False})
            print(f"local files storage {storage.get('id')} at {storage.get('path')}")
        imported = api(base, token, "POST", f"/api/projects/{pid}/import", tasks)
        print(f"import response: task_count={imported.get('task_count')} "
              f"prediction_count={imported.get('prediction_count')}")
        info = api(base, token, "GET", f"/api/projects/{pid}")
        n_tasks, n_preds = info.get("task_number"), info.get("total_predictions_number")
        print(f"tasks imported: {n_tasks}")
        print(f"predictions imported: {n_preds}")
        page = api(base, token, "GET", f"/api/tasks?project={pid}&page_size=1&fields=all")
        first = (page.get("tasks") if isinstance(page, dict) else page)[0]
        print(f"first task data: {json.dumps(first['data'])[:200]}")
        ok = n_tasks == len(tasks) and n_preds == with_pred and first["data"] in [t["data"] for t in tasks]
        if with_pred:
            task = api(base, token, "GET", f"/api/tasks/{first['id']}")
            preds = task.get("predictions") or []
            region = preds[0]["result"][0] if preds else {}
            print(f"first task prediction: {json.dumps(region.get('value'))} from {region.get('from_name')}")
            ok &= bool(region)
        image = first["data"].get("image", "")
        if image.startswith("/data/local-files/"):  # Label Studio serves the exported image path
            req = urllib.request.Request(base + image, headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                body = resp.read()
            print(f"first task image served: HTTP {resp.status}, {len(body)} bytes, {resp.headers.get('Content-Type')}")
            ok &= resp.status == 200 and len(body) > 0
        print("CHECK", "PASSED" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
