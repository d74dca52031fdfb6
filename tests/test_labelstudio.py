"""Label Studio: export-labelstudio writes projects whose text is inert and whose pictures
come from ROOT; import-labelstudio reads Label Studio's JSON export (fixtures recorded from
a real label-studio 1.23.2 by ``python tests/labelstudio_support.py record``), writes the
settled labels, and reports agreement and Cohen's kappa equal to what was posted. The slow
test drives a real server end to end, up to Table 2 and a browser."""

from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

import labelstudio_support as support
from drugjax.data import labelstudio as ls
from drugjax.data.__main__ import main as cli
from drugjax.data.validate import validate

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
# The user ids the fixtures' server gave ana and ben (admin is 1).
ANNOTATORS = "2=expert1,3=expert2"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from drugjax.data.builders import synthetic_root

    return synthetic_root("tiny", 0, 16, tmp_path_factory.mktemp("cache"))


@pytest.fixture
def root(world, tmp_path) -> Path:
    """A copy of the tiny world below a document root (tmp_path/docs)."""
    root = tmp_path / "docs" / "root"
    shutil.copytree(world, root)
    return root


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def export_fixture(kind: str) -> list:
    return json.loads((FIXTURES / f"labelstudio_{kind}.json").read_text(encoding="utf-8"))


def fixtures() -> list[str]:
    return [str(FIXTURES / "labelstudio_posts.json"), str(FIXTURES / "labelstudio_accounts.json")]


def posted(kind: str) -> dict[str, tuple]:
    """{task key: (ana's answer, ben's answer)} as the recording posted them."""
    tasks = export_fixture(kind)
    plan = (support.planned_post_answers if kind == "posts" else support.planned_account_answers)(len(tasks))
    keys = [t["data"]["key"] for t in sorted(tasks, key=lambda t: t["id"])]
    return {k: (a, b) for k, a, b in zip(keys, *plan)}


def expected_agreement(kind: str, question: str, table: dict) -> tuple[int, float, float]:
    pairs = [(table[a[question]], table[b[question]]) for a, b in posted(kind).values()
             if b is not None and question in a and question in b]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    one, two = zip(*pairs)
    return len(pairs), 100 * sum(x == y for x, y in pairs) / len(pairs), cohen_kappa_score(one, two)


# --------------------------------------------------------------------------- export


def test_export_writes_configs_with_text_tags_and_tasks_pointing_into_root(root, tmp_path):
    posts = read_jsonl(root / "posts.jsonl")
    posts[0]["caption"] = "<script>alert(1)</script> \u202eevil\u202c\nsecond line \x1b[31m"
    (root / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in posts), encoding="utf-8")
    counts = ls.export_labelstudio(root, tmp_path / "out")
    timeline_posts = sum(len(read_jsonl(p)) for p in (root / "timelines").glob("*.jsonl"))
    assert counts["post tasks"] == len(posts) + timeline_posts and counts["account tasks"] == 8

    for kind, config in (("posts", ls.POST_CONFIG), ("accounts", ls.ACCOUNT_CONFIG)):
        xml = (tmp_path / "out" / kind / "config.xml").read_text(encoding="utf-8")
        assert xml == config
        tags = {e.tag for e in ET.fromstring(xml).iter()}
        # data reaches the screen only through Text, Header and Image, never HyperText/HTML
        assert not tags & {"HyperText", "HTML", "Markdown"}
        for element in ET.fromstring(xml).iter():
            if "$" in element.get("value", ""):
                assert element.tag in ("Text", "Header", "Image"), element.tag
    tasks = json.loads((tmp_path / "out" / "posts" / "tasks.json").read_text(encoding="utf-8"))
    first = tasks[0]["data"]
    assert first["key"] == posts[0]["id"] and first["drugjax"] == "post"
    assert first["image"] == f"/data/local-files/?d=root/{posts[0]['image']}"
    assert first["caption"] == "<script>alert(1)</script> \\u202eevil\\u202c\nsecond line \\x1b[31m"
    assert first["tags"] == " ".join("#" + t for t in posts[0]["tags"])
    accounts = json.loads((tmp_path / "out" / "accounts" / "tasks.json").read_text(encoding="utf-8"))
    name = accounts[0]["data"]["key"]
    timeline = read_jsonl(root / "timelines" / f"{name}.jsonl")
    assert [p["image"] for p in accounts[0]["data"]["posts"]] == [
        f"/data/local-files/?d=root/{p['image']}" for p in timeline]

    with pytest.raises(ls.LabelStudioError, match="not overwritten"):
        ls.export_labelstudio(root, tmp_path / "out", accounts=False)
    with pytest.raises(ls.LabelStudioError, match="below the document root"):
        ls.export_labelstudio(root, tmp_path / "other", document_root=root)


def test_only_unlabelled_and_one_kind(root, tmp_path, capsys):
    assert cli(["export-labelstudio", str(root), "--out", str(tmp_path / "out"), "--accounts",
                "--only-unlabelled"]) == 0
    out = capsys.readouterr().out
    assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=" + str(root.parent) in out
    assert not (tmp_path / "out" / "posts").exists()
    assert json.loads((tmp_path / "out" / "accounts" / "tasks.json").read_text()) == []  # all judged
    accounts = read_jsonl(root / "accounts.jsonl")
    accounts[1]["expert2"] = None
    (root / "accounts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in accounts))
    assert cli(["export-labelstudio", str(root), "--out", str(tmp_path / "again"), "--only-unlabelled"]) == 0
    (task,) = json.loads((tmp_path / "again" / "accounts" / "tasks.json").read_text())
    assert task["data"]["key"] == accounts[1]["username"]
    unlabelled = [p for p in read_jsonl(root / "posts.jsonl") if p["drug"] is None]
    post_tasks = json.loads((tmp_path / "again" / "posts" / "tasks.json").read_text())
    assert len(post_tasks) > 0 and not {p["id"] for p in unlabelled} - {t["data"]["key"] for t in post_tasks}
    assert cli(["export-labelstudio", str(root / "nothing"), "--out", str(tmp_path / "x")]) == 2


# --------------------------------------------------------------------------- import


def test_import_of_a_real_export_writes_labels_agreement_and_kappa_equal_to_what_was_posted(root, capsys):
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", ANNOTATORS,
                "--relabel"]) == 0
    out = capsys.readouterr().out
    for question, kind, table in (("drug", "posts", ls.DRUG), ("dealer", "accounts", ls.DEALER)):
        n, agreement, kappa = expected_agreement(kind, question, table)
        assert f"{question:<7} {n:>5} tasks  agreement {agreement:5.1f} %  Cohen's kappa {kappa:.3f}" in out
    assert "90  2 (expert1)" in out and "89  3 (expert2)" in out  # ben skipped one post
    assert "1  post tasks skipped in Label Studio by expert2" in out

    # posts: the agreed answer, unlabelled where they disagree, the one answer where ben skipped
    labels = {p["id"]: (p["drug"], p.get("drug_kind")) for p in read_jsonl(root / "posts.jsonl")}
    for f in (root / "timelines").glob("*.jsonl"):
        labels.update({p["id"]: (p["drug"], p.get("drug_kind")) for p in read_jsonl(f)})
    for key, (a, b) in posted("posts").items():
        answers = [x for x in (a, b) if x is not None]
        drugs = {ls.DRUG[x["drug"]] for x in answers}
        if len({x["drug"] for x in answers}) > 1:
            assert labels[key] == (None, None), key
        else:
            kinds = {x.get("kind") for x in answers}
            assert labels[key] == (drugs.pop(), kinds.pop() if len(kinds) == 1 else None), key
    # accounts: each expert's own answer, "can't tell" as null
    accounts = {a["username"]: (a["expert1"], a["expert2"]) for a in read_jsonl(root / "accounts.jsonl")}
    assert accounts == {k: (ls.DEALER[a["dealer"]], ls.DEALER[b["dealer"]]) for k, (a, b) in posted("accounts").items()}
    # the disagreements, ready to settle: id,drug first
    rows = [r for r in csv.reader(out.split("disagreements (")[1].splitlines()[1:]) if len(r) == 7]
    assert rows[0] == list(ls.DISAGREEMENT_COLUMNS)
    assert {(r[0], r[2]) for r in rows[1:]} == {
        (k, "drug") for k, (a, b) in posted("posts").items() if b and a["drug"] != b["drug"]} | {
        (k, "kind") for k, (a, b) in posted("posts").items() if b and a.get("kind") and b.get("kind")
        and a["kind"] != b["kind"]} | {(k, "dealer") for k, (a, b) in posted("accounts").items() if a != b}
    assert all(r[6].startswith("http://localhost:8080/projects/") for r in rows[1:])

    assert validate(root).ok
    # Table 2 reads expert1/expert2 of accounts.jsonl: the same agreement and kappa
    from drugjax.evaluation.dealers import cohen_kappa

    both = [(a, b) for a, b in accounts.values() if a is not None and b is not None]
    n, agreement, kappa = expected_agreement("accounts", "dealer", ls.DEALER)
    assert len(both) == n and 100 * sum(a == b for a, b in both) / n == pytest.approx(agreement)
    assert cohen_kappa(*zip(*both)) == pytest.approx(kappa)
    # only the labelled files and the import's record changed in ROOT
    after = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    assert set(after) - set(before) == {ls.STATE_FILE}
    assert after["web.jsonl"] == before["web.jsonl"] and after["world.json"] == before["world.json"]


def test_labels_set_before_are_kept_and_listed_without_relabel(root, capsys):
    accounts = (root / "accounts.jsonl").read_bytes()
    assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", ANNOTATORS]) == 1
    out = capsys.readouterr().out
    # the synthetic world labelled everything: each account the annotators contradict is
    # listed and kept, the others already hold what they said
    refused = [line for line in out.splitlines() if "set before any import-labelstudio" in line]
    contradicted = {a["username"] for a in json.loads("[" + ",".join(accounts.decode().splitlines()) + "]")
                    if (a["expert1"], a["expert2"]) != tuple(ls.DEALER[x["dealer"]] for x in posted("accounts")[a["username"]])}
    assert {line.split("'")[1] for line in refused if "accounts.jsonl" in line} == contradicted
    assert all("(pass --relabel to replace it)" in line for line in refused)
    assert (root / "accounts.jsonl").read_bytes() == accounts
    # timeline posts nobody had labelled (drug null) got the annotators' label
    answers = posted("posts")
    for f in (root / "timelines").glob("*.jsonl"):
        for post in read_jsonl(f):
            a, b = answers[post["id"]]
            if b is not None and a["drug"] == b["drug"] and f"'{post['id']}'" not in out:
                assert post["drug"] == ls.DRUG[a["drug"]]


def test_reimport_of_a_newer_export_replaces_only_what_changed(root, tmp_path, capsys):
    assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", ANNOTATORS,
                "--relabel"]) == 0
    files = {p: p.read_bytes() for p in [root / "posts.jsonl", root / "accounts.jsonl",
                                          *sorted((root / "timelines").glob("*.jsonl"))]}
    # the same export again: nothing changes
    assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", ANNOTATORS]) == 0
    assert all(p.read_bytes() == data for p, data in files.items())

    # a newer export: ben changed his answer on the first post (agreed before), and the
    # disagreement on the second post was settled by hand with the label command meanwhile
    newer = export_fixture("posts")
    first, second = newer[0], newer[1]
    (ben,) = [a for a in first["annotations"] if a["completed_by"] == 3]
    old = ben["result"][0]["value"]["choices"][0]
    ben["result"] = [{"from_name": "drug", "to_name": "caption", "type": "choices",
                      "value": {"choices": ["not drug-related" if old == "drug-related" else "drug-related"]}}]
    ben["updated_at"] = "2030-01-01T00:00:00Z"
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    settle = tmp_path / "settle.csv"
    settle.write_text(f"id,drug\n{second['data']['key']},1\n")
    assert cli(["label", str(root), "--posts", str(settle)]) == 0
    settled = (root / "posts.jsonl").read_bytes()
    capsys.readouterr()
    assert cli(["import-labelstudio", str(tmp_path / "newer.json"), str(FIXTURES / "labelstudio_accounts.json"),
                "--root", str(root), "--annotators", ANNOTATORS]) == 0
    out = capsys.readouterr().out
    assert "1  posts: labels set in ROOT kept" in out
    posts = read_jsonl(root / "posts.jsonl")
    assert posts[0]["id"] == first["data"]["key"] and posts[0]["drug"] is None  # now a disagreement
    assert posts[1]["id"] == second["data"]["key"] and posts[1]["drug"] == 1  # settled by hand, kept
    before, after = settled.splitlines(), (root / "posts.jsonl").read_bytes().splitlines()
    assert [i for i, (x, y) in enumerate(zip(before, after)) if x != y] == [0]  # only that line
    assert (root / "accounts.jsonl").read_bytes() == files[root / "accounts.jsonl"]


@pytest.mark.parametrize("policy", ["expert1", "expert2"])
def test_on_disagreement_takes_one_experts_answer(root, capsys, policy):
    assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", ANNOTATORS,
                "--relabel", "--on-disagreement", policy]) == 0
    labels = {p["id"]: p["drug"] for p in read_jsonl(root / "posts.jsonl")}
    which = 0 if policy == "expert1" else 1
    for key, answers in posted("posts").items():
        if key in labels and all(answers) and answers[0]["drug"] != answers[1]["drug"]:
            assert labels[key] == ls.DRUG[answers[which]["drug"]]


def test_annotators_by_email_or_by_export_file_and_pseudonyms(root, tmp_path, capsys):
    # completed_by as an object with an email (as some exports write it)
    posts = export_fixture("posts")
    for task in posts:
        for a in task["annotations"]:
            a["completed_by"] = {"id": a["completed_by"], "email": f"user{a['completed_by']}@lab"}
    (tmp_path / "emails.json").write_text(json.dumps(posts))
    assert cli(["import-labelstudio", str(tmp_path / "emails.json"), "--root", str(root), "--annotators",
                "user2@lab=expert1,user3@lab=expert2", "--relabel"]) == 0
    assert "82  2 user2@lab (expert1)" in capsys.readouterr().out

    # one project (or one server) per expert: every annotation of a file is that expert's
    ana = copy.deepcopy(export_fixture("accounts"))
    ben = copy.deepcopy(ana)
    for task in ana:
        task["annotations"] = [a for a in task["annotations"] if a["completed_by"] == 2]
    for task in ben:
        task["annotations"] = [dict(a, completed_by=1) for a in task["annotations"] if a["completed_by"] == 3]
    (tmp_path / "ana.json").write_text(json.dumps(ana))
    (tmp_path / "ben.json").write_text(json.dumps(ben))
    assert cli(["import-labelstudio", str(tmp_path / "ana.json"), str(tmp_path / "ben.json"), "--root", str(root),
                "--annotators", f"{tmp_path / 'ana.json'}=expert1,{tmp_path / 'ben.json'}=expert2", "--relabel"]) == 0
    n, agreement, kappa = expected_agreement("accounts", "dealer", ls.DEALER)
    assert f"Cohen's kappa {kappa:.3f}" in capsys.readouterr().out

    # pseudonymised tasks come back to ROOT's ids with the key
    key = tmp_path / "key"
    assert cli(["export-labelstudio", str(root), "--out", str(tmp_path / "p"), "--pseudonymize", str(key)]) == 0
    tasks = json.loads((tmp_path / "p" / "accounts" / "tasks.json").read_text())
    names = {a["username"] for a in read_jsonl(root / "accounts.jsonl")}
    assert all(t["data"]["key"].startswith("u") and t["data"]["key"] not in names for t in tasks)
    answered = [{"id": i, "project": 9, "data": t["data"], "annotations": [
        {"id": 10 * i + e, "completed_by": e, "result": [{"from_name": "dealer", "to_name": "bio", "type": "choices",
                                                          "value": {"choices": ["dealer"]}}]} for e in (2, 3)]}
        for i, t in enumerate(tasks)]
    (tmp_path / "pseudo.json").write_text(json.dumps(answered))
    capsys.readouterr()
    assert cli(["import-labelstudio", str(tmp_path / "pseudo.json"), "--root", str(root), "--annotators",
                ANNOTATORS, "--pseudonymize", str(key), "--relabel"]) == 0
    assert {(a["expert1"], a["expert2"]) for a in read_jsonl(root / "accounts.jsonl")} == {(1, 1)}
    assert cli(["import-labelstudio", str(tmp_path / "pseudo.json"), "--root", str(root), "--annotators",
                ANNOTATORS]) == 1  # without the key nothing matches
    assert "is not in ROOT" in capsys.readouterr().out


def test_a_malformed_export_lists_its_bad_tasks_and_imports_the_rest(root, tmp_path, capsys):
    tasks = export_fixture("accounts")
    tasks[1] = ["not", "a", "task"]
    tasks[2]["data"] = {"text": "a task of another project"}
    tasks[3]["annotations"][0]["result"][0]["value"]["choices"] = ["maybe"]
    tasks[4]["annotations"][1]["completed_by"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(tasks))
    assert cli(["import-labelstudio", str(tmp_path / "bad.json"), "--root", str(root), "--annotators",
                ANNOTATORS, "--relabel"]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'bad.json'}: task 2 (Label Studio id None): data: not a Label Studio task" in out
    assert f"task 3 (Label Studio id {tasks[2]['id']}): data: a foreign task" in out
    assert f"task 4 (Label Studio id {tasks[3]['id']}): result: annotation" in out and "'maybe'" in out
    assert "1 annotations by Label Studio user 99, who is not in --annotators" in out
    assert "tasks: 0 posts, 6 accounts" in out  # the others imported

    for text, message in (("{", "not JSON"), ('{"tasks": []}', "a list of tasks"), (b"\xff", "not UTF-8")):
        path = tmp_path / "x.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        assert cli(["import-labelstudio", str(path), "--root", str(root), "--annotators", ANNOTATORS]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    for bad in ("2=expert1", "2=expert1,3=expert3", "2=expert1,2=expert2"):
        assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", bad]) == 2
        assert "--annotators" in capsys.readouterr().err


def test_disagreements_file_settles_posts_through_label(root, tmp_path, capsys):
    target = tmp_path / "settle.csv"
    assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", ANNOTATORS, "--relabel",
                "--disagreements", str(target)]) == 0
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    drug_rows = [r for r in rows if r["question"] == "drug"]
    assert drug_rows and all(r["drug"] == "" for r in rows)
    for r in drug_rows:
        r["drug"] = "1"
    with target.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert cli(["label", str(root), "--posts", str(target)]) == 0  # rows left empty change nothing
    labels = {p["id"]: p["drug"] for p in read_jsonl(root / "posts.jsonl")}
    assert all(labels[r["id"]] == 1 for r in drug_rows if r["id"] in labels)
    assert cli(["import-labelstudio", *fixtures(), "--root", str(root), "--annotators", ANNOTATORS,
                "--disagreements", str(target)]) == 2  # never overwritten


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def real_server_run(world, tmp_path_factory) -> dict:
    """The tiny world (with a hostile caption and bio) exported, loaded into a real Label
    Studio, answered by ana and ben through its API, exported; the labelling screens of a
    post and an account opened in headless chromium as ana, when chromium is installed."""
    try:
        script = support.ensure_venv()
    except RuntimeError as e:
        pytest.skip(f"the Label Studio venv could not be created: {e}")
    tmp = tmp_path_factory.mktemp("labelstudio")
    root = tmp / "docs" / "root"
    shutil.copytree(world, root)
    for rel, field in (("posts.jsonl", "caption"), ("accounts.jsonl", "bio")):
        records = read_jsonl(root / rel)
        records[0][field] = support.HOSTILE
        (root / rel).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert ls.export_labelstudio(root, tmp / "out")
    with support.Server(script, tmp / "ls", tmp / "docs") as server:
        got = support.run_scenario(server, tmp / "out", root)
        got["root"], got["tmp"], got["pages"] = root, tmp, None
        post_tasks = sorted(got["posts"], key=lambda t: t["id"])
        account_tasks = sorted(got["accounts"], key=lambda t: t["id"])
        if support.chromium():
            got["pages"] = support.browse(server, *support.ANNOTATORS[0][:2], [
                {"path": f"/projects/{got['projects']['posts']}/data?task={post_tasks[0]['id']}",
                 "wait": "Is this post drug-related?", "png": str(tmp / "post.png")},
                {"path": f"/projects/{got['projects']['accounts']}/data?task={account_tasks[0]['id']}",
                 "wait": "Is this account a drug dealer?", "png": str(tmp / "account.png")}])
            got["timeline"] = read_jsonl(root / "timelines" / f"{account_tasks[0]['data']['key']}.jsonl")
    return got


@pytest.mark.slow
def test_real_label_studio_to_import_validate_and_table2(real_server_run):
    got, root, tmp = real_server_run, real_server_run["root"], real_server_run["tmp"]
    # one project, two annotations per task: after ana answered every post, ben's
    # labelling stream still gave him one, without her annotation
    assert got["blind"]["id"] in {t["id"] for t in got["posts"]} and got["blind"]["annotations"] == []
    assert all(len(t["annotations"]) == 2 for t in got["posts"] + got["accounts"])
    for kind in ("posts", "accounts"):
        (tmp / f"{kind}.json").write_text(json.dumps(got[kind]))
    ids = got["users"]
    annotators = f"{ids[support.ANNOTATORS[0][0]]}=expert1,{ids[support.ANNOTATORS[1][0]]}=expert2"
    done = subprocess.run([sys.executable, "-m", "drugjax.data", "import-labelstudio", str(tmp / "posts.json"),
                           str(tmp / "accounts.json"), "--root", str(root), "--annotators", annotators,
                           "--relabel"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    for question, kind, table in (("drug", "posts", ls.DRUG), ("dealer", "accounts", ls.DEALER)):
        n, agreement, kappa = expected_agreement(kind, question, table)
        assert f"{question:<7} {n:>5} tasks  agreement {agreement:5.1f} %  Cohen's kappa {kappa:.3f}" in done.stdout
    accounts = {a["username"]: (a["expert1"], a["expert2"]) for a in read_jsonl(root / "accounts.jsonl")}
    assert accounts == {k: (ls.DEALER[a["dealer"]], ls.DEALER[b["dealer"]]) for k, (a, b) in posted("accounts").items()}
    assert validate(root).ok
    run = tmp / "run"
    done = subprocess.run([sys.executable, "evaluate.py", "data=dir", f"data.root={root}", "data.image_size=16",
                           "model.backbone.name=tiny", "model.hidden=[16,16]", "image.steps=6", "data.batch_size=8",
                           "image.chunk_steps=3", "data.eval_batch_size=8", "dealers.num_folds=2",
                           f"workdir={run}"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    n, agreement, kappa = expected_agreement("accounts", "dealer", ls.DEALER)
    table2 = json.loads((run / "table2.json").read_text())
    assert table2["agreement"] == pytest.approx(agreement) and table2["kappa"] == pytest.approx(kappa)
    assert f"Experts agree on {agreement:.1f} % of accounts (paper: 94 %), Cohen's kappa {kappa:.2f}." in done.stdout


@pytest.mark.slow
def test_real_label_studio_shows_pictures_and_hostile_text_as_text_in_a_browser(real_server_run):
    if real_server_run["pages"] is None:
        pytest.skip("no chromium to drive (Debian: apt-get install chromium); the configs' use of Text tags only "
                    "is checked by test_export_writes_configs_with_text_tags_and_tasks_pointing_into_root")
    post, account = real_server_run["pages"]
    for page in (post, account):
        assert "<script>window.__pwned = 1</script><img src=x" in page["text"]  # shown as text
        assert "\\u202eevil\\u202c" in page["text"] and "\u202e" not in page["text"]
        assert page["pwned"] is None and page["x_images"] == 0 and page["bold"] == 0  # nothing ran or rendered
    assert len(post["images"]) == 1 and post["images"][0] > 0  # the post's picture, decoded
    assert len(account["images"]) == len(real_server_run["timeline"]) and min(account["images"]) > 0  # the grid
