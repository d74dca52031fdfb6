"""A real Label Studio server for the tests: its own venv (never drugjax's), a server on
127.0.0.1 with two annotators, and the REST calls an admin and the annotators make.

Used by ``tests/test_labelstudio.py``'s slow test and by ``python
tests/labelstudio_support.py record`` (which re-records the fixtures the fast tests read).
The venv is made once under ``$DRUGJAX_LABELSTUDIO_VENV`` (default
``~/.cache/drugjax-labelstudio/venv-<version>``) with ``pip install label-studio==VERSION``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "1.23.2"
ADMIN = ("admin@drugjax.test", "admin-pass-1", "admin-token-0123456789")
# (email, password, legacy API token): the two experts.
ANNOTATORS = (("ana@drugjax.test", "ana-pass-1", "ana-token-0123456789"),
              ("ben@drugjax.test", "ben-pass-1", "ben-token-0123456789"))


def default_venv() -> Path:
    env = os.environ.get("DRUGJAX_LABELSTUDIO_VENV")
    return Path(env) if env else Path.home() / ".cache" / "drugjax-labelstudio" / f"venv-{VERSION}"


def ensure_venv(venv: Path | None = None) -> Path:
    """The venv's ``label-studio`` script, installing it first when missing. Raises
    ``RuntimeError`` with pip's last lines when the install fails."""
    venv = venv or default_venv()
    script = venv / "bin" / "label-studio"
    if (venv / ".complete").exists():
        return script
    # A venv's scripts name their interpreter by absolute path, so it is built where it
    # stays; ".complete" marks a finished install (an interrupted one is made anew).
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    for step in [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={VERSION}"]]:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(step)} failed: {(done.stdout + done.stderr)[-2000:]}")
    (venv / ".complete").write_text(VERSION + "\n")
    return script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``label-studio start`` on 127.0.0.1 with its data in ``home``, serving local files
    below ``document_root``; the admin and the two annotators exist with API tokens."""

    def __init__(self, script: Path, home: Path, document_root: Path, port: int | None = None):
        self.script, self.home, self.document_root = script, Path(home), Path(document_root)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = self.home / "server.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DJANGO"))}
        env.update(LABEL_STUDIO_BASE_DATA_DIR=str(self.home), LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
                   LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(self.document_root))
        return env

    def start(self, timeout: float = 240) -> "Server":
        self.home.mkdir(parents=True, exist_ok=True)
        for i, (email, password, token) in enumerate((ADMIN, *ANNOTATORS)):
            # The first `init` creates the database and the organisation (legacy tokens on);
            # the others add a user to it.
            args = [str(self.script), "init", "-q", "--username", email, "--password", password,
                    "--user-token", token] + (["--enable-legacy-api-token"] if i == 0 else [])
            done = subprocess.run(args, env=self.env(), cwd=self.home, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"label-studio init failed: {(done.stdout + done.stderr)[-2000:]}")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(self.script), "start", "--no-browser", "-p", str(self.port), "--internal-host", "127.0.0.1"],
                env=self.env(), cwd=self.home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label-studio start exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(1)
        raise RuntimeError(f"label-studio did not answer within {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------------- REST

    def call(self, method: str, path: str, body=None, token: str = ADMIN[2]):
        request = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read()[:2000]!r}") from None
        return json.loads(text) if text else None

    def user_ids(self) -> dict[str, int]:
        return {u["email"]: u["id"] for u in self.call("GET", "/api/users")}

    def create_project(self, title: str, folder: Path, root: Path, overlap: int = 2) -> tuple[int, list[int]]:
        """A project with drugjax's config and tasks (``folder``: what export-labelstudio
        wrote), a Local Files storage at ROOT, and ``overlap`` annotations per task (the
        open-source edition has the setting in its API, not in its settings page).
        Returns (project id, task ids in the order of tasks.json)."""
        project = self.call("POST", "/api/projects", {
            "title": title, "label_config": (folder / "config.xml").read_text(encoding="utf-8"),
            "maximum_annotations": overlap})
        pid = project["id"]
        self.call("POST", "/api/storages/localfiles", {"project": pid, "path": str(root), "title": "ROOT",
                                                       "use_blob_urls": False})
        self.call("POST", f"/api/projects/{pid}/import",
                  json.loads((folder / "tasks.json").read_text(encoding="utf-8")))
        tasks = self.call("GET", f"/api/tasks?project={pid}&page_size=10000")["tasks"]
        return pid, [t["id"] for t in sorted(tasks, key=lambda t: t["id"])]

    def annotate(self, task_id: int, choices: dict[str, str], token: str, to_name: str) -> dict:
        result = [{"from_name": name, "to_name": to_name, "type": "choices", "value": {"choices": [value]}}
                  for name, value in choices.items()]
        return self.call("POST", f"/api/tasks/{task_id}/annotations", {"result": result}, token=token)

    def skip(self, task_id: int, token: str) -> dict:
        return self.call("POST", f"/api/tasks/{task_id}/annotations", {"result": [], "was_cancelled": True},
                         token=token)

    def next_task(self, project: int, token: str) -> dict | None:
        """The task the labelling stream ("Label All Tasks") gives this annotator next."""
        try:
            return self.call("GET", f"/api/projects/{project}/next", token=token)
        except RuntimeError as e:
            if "HTTP 404" in str(e):
                return None
            raise

    def export(self, project: int) -> list:
        return self.call("GET", f"/api/projects/{project}/export?exportType=JSON&download_all_tasks=true")


# --------------------------------------------------------------------------- the scenario

KINDS = ("weed", "pills", "syrup", "other")


def planned_post_answers(n: int) -> tuple[list, list]:
    """What ana and ben answer on post task i (None: skipped). Disagreements on tasks 1
    and 6 (drug) and 9 (kind), "can't tell" from ana on 4, a skip by ben on 7."""
    ana, ben = [], []
    for i in range(n):
        drug = "drug-related" if i % 3 == 0 else "not drug-related"
        a = {"drug": "can't tell" if i == 4 else drug}
        if a["drug"] == "drug-related":
            a["kind"] = KINDS[i % 4]
        b = dict(a) if i != 4 else {"drug": drug}
        if i in (1, 6):
            b = {"drug": "drug-related", "kind": "pills"} if a["drug"] != "drug-related" else {"drug": "not drug-related"}
        if i == 9:
            b["kind"] = KINDS[(i + 1) % 4]
        ana.append(a)
        ben.append(None if i == 7 else b)
    return ana, ben


def planned_account_answers(n: int) -> tuple[list, list]:
    """ana calls accounts 0, 3 and 5 dealers, ben 0, 3 and 6 and cannot tell on 2."""
    ana = [{"dealer": "dealer" if j in (0, 3, 5) else "not a dealer"} for j in range(n)]
    ben = [{"dealer": "dealer" if j in (0, 3, 6) else ("can't tell" if j == 2 else "not a dealer")} for j in range(n)]
    return ana, ben


def run_scenario(server: Server, out: Path, root: Path) -> dict:
    """Both projects made from ``out`` (export-labelstudio's folder), every task answered
    by ana then ben through the API as planned above, the projects exported. Returns
    {"posts": export, "accounts": export, "users": {email: id}, "projects": {...},
    "blind": what ben's labelling stream gave him after ana had answered everything}."""
    users = server.user_ids()
    result = {"users": users, "projects": {}}
    for kind, planner, to_name in (("posts", planned_post_answers, "caption"),
                                   ("accounts", planned_account_answers, "bio")):
        pid, task_ids = server.create_project(f"drugjax {kind}", out / kind, root)
        result["projects"][kind] = pid
        plans = planner(len(task_ids))
        for (email, _, token), plan in zip(ANNOTATORS, plans):
            if email == ANNOTATORS[1][0] and kind == "posts":
                result["blind"] = server.next_task(pid, token)
            for task_id, answer in zip(task_ids, plan):
                if answer is None:
                    server.skip(task_id, token)
                else:
                    server.annotate(task_id, answer, token, to_name)
        result[kind] = server.export(pid)
    return result


# --------------------------------------------------------------------------- a browser

HOSTILE = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
           '<b>bold?</b> \u202eevil\u202c \x1b[31mred')

BROWSER_SCRIPT = r"""
import json, sys
from playwright.sync_api import sync_playwright
url, email, password, pages = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
out = []
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=sys.argv[5], args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url + "/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")
    for item in pages:
        page.goto(url + item["path"])
        page.wait_for_selector(f"text={item['wait']}", timeout=60000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1500)  # images decode after the network is idle
        # The labelling screen fetches each /data/local-files/ picture and shows it as a blob.
        images = page.evaluate("Array.from(document.images).filter(i => i.src.startsWith('blob:'))"
                               ".map(i => i.naturalWidth)")
        if item.get("full"):  # the labelling panel scrolls on its own: make the page tall enough
            page.set_viewport_size({"width": 1280, "height": 1150})
            page.wait_for_timeout(1500)
        page.screenshot(path=item["png"])
        out.append({"text": page.inner_text("body"), "pwned": page.evaluate("window.__pwned === undefined ? null : window.__pwned"),
                    "x_images": page.evaluate("document.querySelectorAll('img[src=x]').length"),
                    "bold": page.evaluate("Array.from(document.querySelectorAll('b')).filter(b => b.textContent == 'bold?').length"),
                    "images": images})
    browser.close()
print(json.dumps(out))
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def ensure_playwright(script: Path) -> Path:
    """The Label Studio venv's python, with playwright (its browser: the system's chromium)."""
    python = script.parent / "python"
    if subprocess.run([str(python), "-c", "import playwright"], capture_output=True).returncode:
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "playwright"], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pip install playwright failed: {(done.stdout + done.stderr)[-2000:]}")
    return python


def browse(server: Server, email: str, password: str, pages: list[dict]) -> list[dict]:
    """Log in as ``email`` in headless chromium and, for each page {"path", "wait" (a text
    to wait for), "png"}, take a screenshot; returns per page the body's text, whether a
    script ran (window.__pwned), injected elements found, and the local-files images with
    their decoded widths."""
    python = ensure_playwright(server.script)
    done = subprocess.run([str(python), "-c", BROWSER_SCRIPT, server.url, email, password, json.dumps(pages),
                           chromium()], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"the browser failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def screenshots(server: Server, out: Path, root: Path, docs: Path) -> None:
    """docs/labelling-post.png and docs/labelling-account.png: ana's labelling screen of a
    post with a drug in its picture and of the account with the longest timeline."""
    from PIL import Image

    posts, tasks = server.create_project("drugjax posts", out / "posts", root)
    accounts, account_tasks = server.create_project("drugjax accounts", out / "accounts", root)
    post_data = json.loads((out / "posts" / "tasks.json").read_text(encoding="utf-8"))
    account_data = json.loads((out / "accounts" / "tasks.json").read_text(encoding="utf-8"))
    post = next(i for i, t in enumerate(post_data) if "purple" in t["data"]["caption"] or "lean" in t["data"]["tags"])
    account = max(range(len(account_data)), key=lambda i: len(account_data[i]["data"]["posts"]))
    pages = [{"path": f"/projects/{posts}/data?task={tasks[post]}", "wait": "Is this post drug-related?",
              "png": str(docs / "labelling-post.png")},
             {"path": f"/projects/{accounts}/data?task={account_tasks[account]}", "full": True,
              "wait": "Is this account a drug dealer?", "png": str(docs / "labelling-account.png")}]
    browse(server, ANNOTATORS[0][0], ANNOTATORS[0][1], pages)
    for page in pages:  # a 64-colour palette keeps each file small enough for the repository
        image = Image.open(page["png"]).convert("RGB")
        image.quantize(64, method=Image.Quantize.MEDIANCUT).save(page["png"], optimize=True)


def main(argv: list[str]) -> int:
    """``python tests/labelstudio_support.py record``: run the scenario on the tiny world
    and write tests/fixtures/labelstudio_{posts,accounts}.json (the fast tests' input).
    ``... screenshots``: the labelling screens of a post and an account in docs/."""
    import tempfile

    if argv not in (["record"], ["screenshots"]):
        print(main.__doc__)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from drugjax.data.builders import synthetic_root
    from drugjax.data.labelstudio import export_labelstudio

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "docs" / "root"
        shutil.copytree(synthetic_root("tiny", 0, 96, tmp / "cache"), root)
        export_labelstudio(root, tmp / "out")
        with Server(ensure_venv(), tmp / "ls", tmp / "docs") as server:
            if argv == ["screenshots"]:
                screenshots(server, tmp / "out", root, Path(__file__).resolve().parents[1] / "docs")
                return 0
            got = run_scenario(server, tmp / "out", root)
        fixtures = Path(__file__).resolve().parent / "fixtures"
        for kind in ("posts", "accounts"):
            (fixtures / f"labelstudio_{kind}.json").write_text(json.dumps(got[kind], indent=1, ensure_ascii=False) + "\n")
        print(f"recorded with label-studio {VERSION}; users {got['users']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
