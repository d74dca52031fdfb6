"""Labelling in Label Studio: export a ROOT's posts and accounts as Label Studio projects,
import the experts' annotations back.

``export_labelstudio`` writes, per kind (posts, accounts), a labelling configuration
(``config.xml``) and the tasks (``tasks.json``). Pictures stay in ROOT: each task points
at them through Label Studio's local-files storage (``/data/local-files/?d=<path>``,
relative to the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``). Every text from
the data (captions, tags, comments, bios) is shown with ``<Text>`` tags, which Label
Studio renders as text, never as HTML; control characters and bidi overrides are written
as visible escapes (``\\u202e``) so that nothing reorders or hides what the expert reads.

``import_labelstudio`` reads Label Studio's JSON export (one file, or one per expert's
project), maps each annotator to expert1 / expert2, and writes into ROOT:

- posts: ``drug`` (0, 1 or null) and ``drug_kind`` (weed, pills, syrup, other or null),
  to every record with that id (posts.jsonl and the timelines), the labels.py rule. Two
  agreeing answers give the label; a disagreement leaves the post unlabelled until it is
  settled (``on_disagreement="unlabelled"``) or takes one expert's answer; "can't tell"
  gives null; a post one annotator judged gets that answer;
- accounts: ``expert1`` and ``expert2`` from each expert's answer ("can't tell": null).

A label is changed only when it is null or holds what an earlier import wrote (recorded
in ``ROOT/labelstudio_import.json``), so a re-import of a newer export replaces what the
annotators changed and nothing else, and a label set another way (the CSV ``label``
command, the data as it came) is listed and kept unless ``relabel=True``. A post settled
by hand is kept while the annotators still disagree. Files are replaced atomically;
records that do not change stay byte for byte.

Agreement and Cohen's kappa (sklearn) are computed per question over the tasks both
experts answered yes or no (kind: both answered drug-related and a kind).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

from drugjax.data import rootfiles, schema
from drugjax.data.labels import LabelProblem, index_files, post_files
from drugjax.data.pseudonym import Pseudonymizer
from drugjax.errors import UserError
from drugjax.runtime.textsafe import csv_cell, escape_controls

STATE_FILE = "labelstudio_import.json"
DRUG = {"drug-related": 1, "not drug-related": 0, "can't tell": None}
KINDS = ("weed", "pills", "syrup", "other")
DEALER = {"dealer": 1, "not a dealer": 0, "can't tell": None}
EXPERTS = ("expert1", "expert2")
POLICIES = ("unlabelled", "expert1", "expert2")
# The questions of each kind of task: (the Choices tag's name, its choices).
QUESTIONS = {"post": {"drug": tuple(DRUG), "kind": KINDS}, "account": {"dealer": tuple(DEALER)}}


class LabelStudioError(UserError, ValueError):
    """An export or an output folder that cannot be used at all."""


@dataclasses.dataclass(frozen=True)
class TaskProblem:
    """A task or annotation of an export not imported: the file, the task's position in
    it (1-based) and Label Studio's id, the field and the reason."""

    file: str
    position: int
    task_id: Any
    field: str
    reason: str

    def __str__(self) -> str:
        return escape_controls(f"{self.file}: task {self.position} (Label Studio id {self.task_id}): "
                               f"{self.field}: {self.reason}")


# --------------------------------------------------------------------------- configs


def _choices(name: str, to: str, values, extra: str = "") -> str:
    inner = "".join(f'\n    <Choice value="{v}"/>' for v in values)
    return (f'  <Choices name="{name}" toName="{to}" choice="single-radio" showInline="true"{extra}>'
            f'{inner}\n  </Choices>')


POST_CONFIG = f"""<View>
  <Header value="Post $key by $account, $when" size="4"/>
  <Image name="picture" value="$image" maxWidth="320px" zoomControl="false"/>
  <Header value="Caption" size="5"/>
  <Text name="caption" value="$caption"/>
  <Header value="Tags" size="5"/>
  <Text name="tags" value="$tags"/>
  <Header value="Comments" size="5"/>
  <Text name="comments" value="$comments"/>
  <Header value="Is this post drug-related?" size="5"/>
{_choices("drug", "caption", DRUG, ' required="true"')}
  <View visibleWhen="choice-selected" whenTagName="drug" whenChoiceValue="drug-related">
    <Header value="Which drug?" size="5"/>
{_choices("kind", "caption", KINDS)}
  </View>
</View>
"""

# The grid is laid out on the Repeater's own element, whose children are the items.
_GRID = "display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 8px;"
ACCOUNT_CONFIG = f"""<View>
  <Style>.drugjax-grid {{ {_GRID} }}</Style>
  <Header value="Account $username" size="4"/>
  <Text name="bio" value="$bio"/>
  <Text name="counts" value="$counts"/>
  <Header value="Is this account a drug dealer?" size="5"/>
{_choices("dealer", "bio", DEALER, ' required="true"')}
  <Header value="Its posts" size="5"/>
  <Repeater on="$posts" indexFlag="{{{{idx}}}}" className="drugjax-grid">
    <View style="border: 1px solid #ddd; padding: 4px">
      <Image name="picture_{{{{idx}}}}" value="$posts[{{{{idx}}}}].image" maxWidth="160px" zoomControl="false"/>
      <Text name="caption_{{{{idx}}}}" value="$posts[{{{{idx}}}}].caption"/>
    </View>
  </Repeater>
</View>
"""


# --------------------------------------------------------------------------- export


def shown(text: Any) -> str:
    """Text from the data as Label Studio should show it: line breaks kept, every other
    control character and bidi override written as a visible escape."""
    return "\n".join(escape_controls(line) for line in str(text).replace("\r\n", "\n").split("\n"))


def local_file_url(root: Path, document_root: Path, relpath: str | None) -> str:
    """``/data/local-files/?d=...`` for an image of ROOT, or "" for none."""
    if not relpath:
        return ""
    rel = os.path.relpath(os.path.realpath(root / relpath), os.path.realpath(document_root))
    from urllib.parse import quote

    return "/data/local-files/?d=" + quote(rel.replace(os.sep, "/"))


def _records(root: Path, rel: str, key: str, counts: collections.Counter) -> list[dict]:
    out = []
    for line in rootfiles.read_lines(root / rel):
        rec = rootfiles.parse_line(line)
        if rec is None or not isinstance(rec.get(key), str):
            counts[f"{rel} lines not readable (run validate)"] += bool(line.strip())
            continue
        out.append(rec)
    return out


def _post_task(rec: dict, root: Path, document_root: Path, pseudo: Pseudonymizer | None) -> dict:
    text = pseudo.text if pseudo else (lambda s: s)
    key = pseudo.post_id(rec["id"]) if pseudo else rec["id"]
    account = pseudo.username(str(rec.get("account", ""))) if pseudo else str(rec.get("account", ""))
    tags = " ".join("#" + str(t) for t in rec.get("tags") or [])
    comments = "\n".join("• " + text(str(c)) for c in rec.get("comments") or []) or "(none)"
    return {"drugjax": "post", "key": key, "account": shown(account), "when": shown(rec.get("timestamp", "")),
            "image": local_file_url(root, document_root, rec.get("image")),
            "caption": shown(text(str(rec.get("caption") or ""))),
            "tags": shown(tags or "(none)"), "comments": shown(comments)}


def _account_task(rec: dict, timeline: list[dict], root: Path, document_root: Path,
                  pseudo: Pseudonymizer | None) -> dict:
    text = pseudo.text if pseudo else (lambda s: s)
    key = pseudo.username(rec["username"]) if pseudo else rec["username"]
    posts = [{"image": local_file_url(root, document_root, p.get("image")),
              "caption": shown(text(str(p.get("caption") or "")) or "(no caption)")} for p in timeline]
    return {"drugjax": "account", "key": key, "username": shown(key),
            "bio": shown(text(str(rec.get("bio") or "")) or "(no bio)"),
            "counts": f"{rec.get('followers')} followers, {rec.get('following')} following, {len(timeline)} posts",
            "posts": posts}


def _leaks(task_images: list[str], secrets: list[str]) -> bool:
    return any(s and s in url for url in task_images for s in secrets)


def export_labelstudio(root: str | Path, out: str | Path, *, posts: bool = True, accounts: bool = True,
                       only_unlabelled: bool = False, pseudonymizer: Pseudonymizer | None = None,
                       document_root: str | Path | None = None) -> collections.Counter:
    """Write ``OUT/posts/{config.xml,tasks.json}`` and/or ``OUT/accounts/...``; returns counts.

    ``document_root`` is the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: the
    folder above ROOT, since the local-files storage must be a folder below it: ROOT).
    Files that exist are not overwritten."""
    root, out = Path(root), Path(out)
    document_root = Path(document_root) if document_root is not None else Path(os.path.realpath(root)).parent
    real_doc, real_root = os.path.realpath(document_root), os.path.realpath(root)
    if real_doc == real_root or not real_root.startswith(real_doc.rstrip(os.sep) + os.sep):
        raise LabelStudioError(f"ROOT {root} must be a folder below the document root {document_root} "
                               f"(Label Studio serves local files only from storages below it)")
    kinds = [k for k, on in (("posts", posts), ("accounts", accounts)) if on]
    for kind in kinds:
        for name in ("config.xml", "tasks.json"):
            if (out / kind / name).exists():
                raise LabelStudioError(f"{out / kind / name} exists; it is not overwritten (choose another --out)")
    counts: collections.Counter = collections.Counter()
    if "posts" in kinds:
        tasks, seen = [], set()
        for rel in post_files(root):
            for rec in _records(root, rel, "id", counts):
                if rec["id"] in seen or (only_unlabelled and rec.get("drug") is not None):
                    continue
                seen.add(rec["id"])
                task = _post_task(rec, root, document_root, pseudonymizer)
                if pseudonymizer and _leaks([task["image"]], [rec["id"], str(rec.get("account", ""))]):
                    counts["posts whose picture's file name holds the real id or username (pseudonymise the ROOT "
                           "with import-instaloader --pseudonymize instead)"] += 1
                tasks.append({"data": task})
        _write(out / "posts", POST_CONFIG, tasks)
        counts["post tasks"] = len(tasks)
    if "accounts" in kinds:
        tasks = []
        for rec in _records(root, schema.ACCOUNTS_FILE, "username", counts):
            if only_unlabelled and rec.get("expert1") is not None and rec.get("expert2") is not None:
                continue
            timeline = _records(root, f"{schema.TIMELINES_DIR}/{rec['username']}.jsonl", "id", counts)
            task = _account_task(rec, timeline, root, document_root, pseudonymizer)
            if pseudonymizer and _leaks([p["image"] for p in task["posts"]], [rec["username"]]):
                counts["accounts whose pictures' file names hold the real username"] += 1
            tasks.append({"data": task})
        _write(out / "accounts", ACCOUNT_CONFIG, tasks)
        counts["account tasks"] = len(tasks)
    return counts


def _write(folder: Path, config: str, tasks: list[dict]) -> None:
    rootfiles.write_bytes(folder / "config.xml", config.encode("utf-8"))
    text = json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"
    rootfiles.write_bytes(folder / "tasks.json", text.encode("utf-8"))


# --------------------------------------------------------------------------- reading an export


@dataclasses.dataclass
class Answer:
    """One expert's answers to one task (``None`` for "can't tell" or not asked)."""

    values: dict[str, Any]
    answered: set[str]
    task: str  # "file: task N (Label Studio id I)" for messages
    link: str
    updated: str


@dataclasses.dataclass
class ImportReport:
    tasks: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    per_annotator: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    # question -> {"both": n, "agree": n, "agreement": %, "kappa": float}
    agreement: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    disagreements: list[dict[str, str]] = dataclasses.field(default_factory=list)
    problems: list[LabelProblem | TaskProblem] = dataclasses.field(default_factory=list)


def parse_annotators(text: str) -> dict[str, str]:
    """``NAME=expert1,NAME=expert2`` as {NAME: expert}; NAME is a Label Studio user id,
    an email, or an export file (every annotation in it is that expert's)."""
    mapping: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, expert = part.rpartition("=")
        if not name or expert not in EXPERTS:
            raise LabelStudioError(f"--annotators: {part!r} is not NAME=expert1 or NAME=expert2")
        if name in mapping:
            raise LabelStudioError(f"--annotators: {name!r} is named twice")
        mapping[name] = expert
    if sorted(mapping.values()) != sorted(EXPERTS):
        raise LabelStudioError("--annotators must name one annotator for expert1 and one for expert2, "
                               "e.g. --annotators 2=expert1,3=expert2 (Label Studio user ids or emails)")
    return mapping


def _load_export(path: Path) -> list:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise LabelStudioError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise LabelStudioError(f"{path}: not UTF-8 (byte {e.start + 1}); export JSON from Label Studio") from None
    except json.JSONDecodeError as e:
        raise LabelStudioError(f"{path}: not JSON ({e.msg}, line {e.lineno} column {e.colno}); export with "
                               f"Label Studio's JSON format, not JSON-MIN, CSV or TSV") from None
    if not isinstance(data, list):
        raise LabelStudioError(f"{path}: a Label Studio JSON export is a list of tasks, got a JSON "
                               f"{type(data).__name__}")
    return data


def _annotator(annotation: dict, file_expert: str | None, names: dict[str, str]) -> tuple[str | None, str]:
    """(expert or None, the annotator as the export names it: id, or id and email)."""
    who = annotation.get("completed_by")
    ids = []
    if isinstance(who, dict):
        ids = [str(who.get("id")), str(who.get("email"))]
    elif isinstance(who, (int, str)) and not isinstance(who, bool):
        ids = [str(who)]
    label = " ".join(i for i in ids if i != "None") or "nobody"
    if file_expert is not None:
        return file_expert, label
    for i in ids:
        if i in names:
            return names[i], label
    return None, label


def _file_expert(path: Path, names: dict[str, str]) -> str | None:
    """The expert an export file is named for in --annotators (one project per expert)."""
    for name, expert in names.items():
        if os.path.realpath(name) == os.path.realpath(path):
            return expert
    return None


def _choice(result: list, name: str, allowed) -> tuple[bool, str | None, str | None]:
    """(answered, choice, problem) of the Choices tag ``name`` in an annotation's result."""
    for item in result:
        if isinstance(item, dict) and item.get("from_name") == name:
            choices = (item.get("value") or {}).get("choices") if isinstance(item.get("value"), dict) else None
            if not (isinstance(choices, list) and len(choices) == 1 and choices[0] in allowed):
                return False, None, f"{name}: {choices!r} is not one of {', '.join(allowed)}"
            return True, choices[0], None
    return False, None, None


def read_exports(paths: list[Path], names: dict[str, str], url: str, report: ImportReport
                 ) -> dict[tuple[str, str], dict[str, Answer]]:
    """{(kind, key): {expert: Answer}} from the exports; bad tasks and annotations go to
    ``report.problems`` one per line, skipped annotations are counted."""
    answers: dict[tuple[str, str], dict[str, Answer]] = collections.defaultdict(dict)
    unknown: collections.Counter = collections.Counter()
    for path in paths:
        file_expert = _file_expert(path, names)
        for n, task in enumerate(_load_export(path), start=1):
            task_id = task.get("id") if isinstance(task, dict) else None

            def bad(reason: str, field: str = "data") -> None:
                report.problems.append(TaskProblem(str(path), n, task_id, field, reason))

            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                bad("not a Label Studio task (no 'data' object)")
                continue
            where = f"{path}: task {n} (Label Studio id {task_id})"
            data = task["data"]
            kind, key = data.get("drugjax"), data.get("key")
            if kind not in QUESTIONS or not isinstance(key, str) or not key:
                bad("a foreign task: its data has no drugjax post/account key (was it exported by "
                    "export-labelstudio?)")
                continue
            report.tasks[kind] += 1
            annotations = task.get("annotations")
            if not isinstance(annotations, list):
                bad("'annotations' is not a list", "annotations")
                continue
            link = f"{url.rstrip('/')}/projects/{task.get('project')}/data?task={task.get('id')}"
            for a in annotations:
                if not isinstance(a, dict):
                    bad("an annotation that is not an object", "annotations")
                    continue
                expert, who = _annotator(a, file_expert, names)
                if expert is None:
                    unknown[who] += 1
                    continue
                if a.get("was_cancelled"):
                    report.counts[f"{kind} tasks skipped in Label Studio by {expert}"] += 1
                    continue
                result = a.get("result")
                if not isinstance(result, list):
                    bad(f"annotation {a.get('id')}: 'result' is not a list", "result")
                    continue
                values, answered, problems = {}, set(), []
                for question, allowed in QUESTIONS[kind].items():
                    got, choice, problem = _choice(result, question, allowed)
                    if problem:
                        problems.append(problem)
                    if got:
                        answered.add(question)
                        values[question] = choice
                if problems:
                    bad(f"annotation {a.get('id')} by {who}: " + "; ".join(problems), "result")
                    continue
                if not answered:
                    report.counts[f"{kind} annotations with no answer (nothing chosen)"] += 1
                    continue
                answer = Answer(values, answered, where, link, str(a.get("updated_at") or ""))
                report.per_annotator[f"{who} ({expert})"] += 1
                previous = answers[(kind, key)].get(expert)
                if previous is not None:
                    report.counts[f"{kind} tasks answered twice by {expert} (the later answer kept)"] += 1
                    if previous.updated > answer.updated:
                        continue
                answers[(kind, key)][expert] = answer
    for who, n in sorted(unknown.items()):
        report.problems.append(LabelProblem(", ".join(map(str, paths)), 0, "completed_by",
                                            f"{n} annotations by Label Studio user {who}, who is not in "
                                            f"--annotators (not imported)"))
    return answers


# --------------------------------------------------------------------------- agreement


def _kappa(a: list, b: list) -> float:
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        # one answer only (both said "no" to everything): undefined; sklearn warns, gives nan
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b))


def _agreement(answers: dict, report: ImportReport) -> None:
    mapping = {"drug": DRUG, "dealer": DEALER}
    for kind, questions in QUESTIONS.items():
        for question in questions:
            pairs = []
            for (k, key), by in sorted(answers.items()):
                if k != kind or not all(e in by and question in by[e].answered for e in EXPERTS):
                    continue
                one, two = (by[e].values[question] for e in EXPERTS)
                if one != two:
                    report.disagreements.append({"kind": kind, "id": key, "question": question, "expert1": one,
                                                 "expert2": two, "task": by["expert1"].task,
                                                 "link": by["expert1"].link})
                if question in mapping:
                    one, two = mapping[question][one], mapping[question][two]
                    if one is None or two is None:
                        continue
                pairs.append((one, two))
            agree = sum(x == y for x, y in pairs)
            report.agreement[question] = {
                "both": len(pairs), "agree": agree,
                "agreement": 100 * agree / len(pairs) if pairs else float("nan"),
                "kappa": _kappa([x for x, _ in pairs], [y for _, y in pairs]) if pairs else float("nan")}
    for kind, question, table in (("post", "drug", DRUG), ("account", "dealer", DEALER)):
        for (k, _), by in answers.items():
            for expert, answer in by.items():
                if k == kind and question in answer.answered and table[answer.values[question]] is None:
                    report.counts[f"{kind}s {expert} could not tell"] += 1


# --------------------------------------------------------------------------- settling and writing


def settle_post(by: dict[str, Answer], policy: str) -> tuple[dict[str, Any] | None, str]:
    """The labels a post gets from its answers: ({"drug", "drug_kind"}, how), or (None,
    "disagreement") when it stays as it is until settled."""
    drug = {e: DRUG[a.values["drug"]] for e, a in by.items() if "drug" in a.answered}
    if not drug:
        return None, "no drug answer"
    if len(drug) == 1:
        (expert,) = drug
        label, how = drug[expert], "one annotator"
    elif by["expert1"].values["drug"] == by["expert2"].values["drug"]:
        expert, label, how = None, drug["expert1"], "agreed"
    elif policy == "unlabelled":
        return None, "disagreement"
    else:
        expert, label, how = policy, drug.get(policy), f"disagreement, {policy}'s answer"
    kinds = {by[e].values.get("kind") for e in ([expert] if expert else drug) if drug.get(e) == 1}
    kind = kinds.pop() if label == 1 and len(kinds) == 1 else None
    return {"drug": label, "drug_kind": kind}, how


def _load_state(root: Path) -> dict:
    path = root / STATE_FILE
    if not path.exists():
        return {"posts": {}, "accounts": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(state.get("posts"), dict) and isinstance(state.get("accounts"), dict)):
            raise ValueError("no posts/accounts objects")
    except (ValueError, AttributeError) as e:
        raise LabelStudioError(f"{path} is unreadable ({e}); it records the labels earlier imports wrote. Move it "
                               f"away and pass --relabel to import anew") from None
    return state


def _apply(root: Path, rels: list[str], key_field: str, wanted: dict[str, dict], before: dict[str, dict],
           relabel: bool, report: ImportReport, what: str, keep_when_none: bool) -> dict[str, dict]:
    """Write ``wanted`` {key: {field: value}} into the records of ``rels``; returns what
    is now ours (the new state for these keys)."""
    lines, where = index_files(root, rels, key_field)
    changed: set[str] = set()
    now = dict(before)
    for key, fields in sorted(wanted.items()):
        places = where.get(key)
        if not places:
            report.problems.append(LabelProblem(str(root), 0, key_field, f"{what[:-1]} {key!r} is not in ROOT "
                                                                         f"(tasks from another ROOT?)"))
            continue
        records = [(p, rootfiles.parse_line(lines[p.file][p.index])) for p in places]
        ours = before.get(key, {})
        apply = {}
        for field, value in fields.items():
            currents = [rec.get(field) for _, rec in records]
            if all(c == value for c in currents):
                apply[field] = value
                continue
            foreign = [(p, c) for (p, _), c in zip(records, currents)
                       if c is not None and not (field in ours and c == ours[field])]
            if foreign and value is None and keep_when_none and not relabel:
                report.counts[f"{what}: labels set in ROOT kept (the annotators gave none: disagreement "
                              f"or can't tell)"] += 1
                continue
            if foreign and not relabel and field != "drug_kind":
                p, c = foreign[0]
                report.problems.append(LabelProblem(p.file, p.index + 1, field, f"{key!r} is {c!r} in ROOT, set "
                                                    f"before any import-labelstudio; the annotators say {value!r} "
                                                    f"(pass --relabel to replace it)"))
                apply = {}
                break
            apply[field] = value
        if not apply:
            continue
        for p, rec in records:
            if all(rec.get(f) == v for f, v in apply.items()):
                continue
            rec.update(apply)
            lines[p.file][p.index] = rootfiles.json_line(rec)
            changed.add(p.file)
            report.counts[f"{what}: records changed"] += 1
        now[key] = {**ours, **apply}
    for rel in sorted(changed):
        rootfiles.write_lines(root / rel, lines[rel])
    return now


def import_labelstudio(exports: list[str | Path], root: str | Path, annotators: dict[str, str], *,
                       on_disagreement: str = "unlabelled", relabel: bool = False,
                       pseudonymizer: Pseudonymizer | None = None, url: str = "http://localhost:8080"
                       ) -> ImportReport:
    """Read the exports, write the labels into ROOT (module docstring), return the report."""
    if on_disagreement not in POLICIES:
        raise LabelStudioError(f"--on-disagreement must be one of {', '.join(POLICIES)}, got {on_disagreement!r}")
    root = Path(root)
    report = ImportReport()
    state = _load_state(root)
    answers = read_exports([Path(p) for p in exports], annotators, url, report)
    _agreement(answers, report)
    post_keys, account_keys = _real_keys(root, pseudonymizer)
    for row in report.disagreements:  # the settler needs ROOT's ids, not pseudonyms
        row["id"] = (post_keys if row["kind"] == "post" else account_keys).get(row["id"], row["id"])
    posts, accounts = {}, {}
    for (kind, key), by in answers.items():
        real = (post_keys if kind == "post" else account_keys).get(key)
        if real is None:
            source = next(iter(by.values())).task
            report.problems.append(LabelProblem(str(root), 0, "key", f"{kind} {key!r} (from {source}) is not in "
                                                f"ROOT{' under this key' if pseudonymizer else ''}"))
            continue
        if kind == "post":
            labels, how = settle_post(by, on_disagreement)
            report.counts[f"posts: {how}"] += 1
            if labels is not None:
                posts[real] = labels
            elif how == "disagreement":
                posts[real] = {"drug": None, "drug_kind": None}
        else:
            accounts[real] = {e: DEALER[a.values["dealer"]] for e, a in by.items() if "dealer" in a.answered}
    state["posts"] = _apply(root, post_files(root), "id", posts, state["posts"], relabel, report, "posts",
                            keep_when_none=True)
    state["accounts"] = _apply(root, [schema.ACCOUNTS_FILE], "username", accounts, state["accounts"], relabel,
                               report, "accounts", keep_when_none=False)
    rootfiles.write_bytes(root / STATE_FILE, (json.dumps(state, sort_keys=True, indent=1) + "\n").encode("utf-8"))
    return report


def _real_keys(root: Path, pseudo: Pseudonymizer | None) -> tuple[dict[str, str], dict[str, str]]:
    """{task key: post id} and {task key: username} of ROOT's records."""
    counts: collections.Counter = collections.Counter()
    posts = {r["id"]: r["id"] for rel in post_files(root) for r in _records(root, rel, "id", counts)}
    accounts = {r["username"]: r["username"] for r in _records(root, schema.ACCOUNTS_FILE, "username", counts)}
    if pseudo:
        posts = {pseudo.post_id(k): v for k, v in posts.items()}
        accounts = {pseudo.username(k): v for k, v in accounts.items()}
    return posts, accounts


# --------------------------------------------------------------------------- the disagreements


DISAGREEMENT_COLUMNS = ("id", "drug", "question", "expert1", "expert2", "task", "link")


def disagreements_csv(rows: list[dict[str, str]], *, for_terminal: bool = False) -> str:
    """The disagreements as CSV: ``id,drug`` first (``drug`` empty: fill in 0 or 1 and
    merge with ``python -m drugjax.data label ROOT --posts FILE``), then the question,
    both answers, the task and its link. ``for_terminal``: cells escaped for printing,
    lines ending in ``\n``."""
    cell = escape_controls if for_terminal else csv_cell
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n" if for_terminal else "\r\n")
    writer.writerow(DISAGREEMENT_COLUMNS)
    for r in rows:
        writer.writerow([cell(r["id"]), "", r["question"], r["expert1"], r["expert2"], cell(r["task"]), r["link"]])
    return buf.getvalue()
