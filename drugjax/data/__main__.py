"""``python -m drugjax.data COMMAND``: check a dataset ROOT, import Instaloader
downloads into one, and move labels in and out of it as CSV or through Label Studio.

  validate ROOT [--rejected PATH] [--max-pixels N]
  import-instaloader SRC... --out ROOT [--pseudonymize KEYFILE] [--copy]
  export-unlabelled ROOT [--posts CSV] [--accounts CSV]
  label ROOT [--posts CSV] [--accounts CSV] [--relabel]
  export-labelstudio ROOT --out DIR [--posts|--accounts] [--only-unlabelled] [--pseudonymize KEYFILE]
  import-labelstudio EXPORT.json... --root ROOT --annotators NAME=expert1,NAME=expert2
                     [--on-disagreement unlabelled|expert1|expert2] [--relabel] [--disagreements CSV]
  where [--preset P] [--seed S] [--image-size N] [--data-dir DIR]

``where`` prints the ROOT of a synthetic world (by default the paper-sized one that
``python train.py`` and ``python evaluate.py`` use), generating it on first use, so that
``python -m drugjax.detect "$(python -m drugjax.data where)" ...`` works.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from drugjax.data.schema import DEFAULT_MAX_PIXELS
from drugjax.errors import USER_ERRORS, UserError, print_error
from drugjax.runtime.textsafe import escape_controls


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m drugjax.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check every record and image of a dataset ROOT")
    v.add_argument("root", help="dataset folder holding posts.jsonl, web.jsonl, accounts.jsonl, ...")
    v.add_argument("--rejected", metavar="PATH", help="also write the rejections here as JSON lines")
    v.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"images with more pixels are rejected as decompression bombs "
                        f"(default {DEFAULT_MAX_PIXELS})")
    i = sub.add_parser("import-instaloader", help="import folders written by Instaloader into a ROOT")
    i.add_argument("sources", nargs="+", metavar="SRC",
                   help="folders Instaloader wrote: '#tag' (hashtag search) or a profile name")
    i.add_argument("--out", required=True, metavar="ROOT", help="the dataset folder to create or add to")
    i.add_argument("--pseudonymize", metavar="KEYFILE",
                   help="replace usernames, @mentions and post ids by keyed hashes; the key is read from "
                        "KEYFILE (created when missing), which must stay outside ROOT")
    i.add_argument("--copy", action="store_true", help="copy pictures (default: hard-link when possible)")
    e = sub.add_parser("export-unlabelled", help="write CSV files of the posts and accounts still to be labelled")
    e.add_argument("root")
    e.add_argument("--posts", metavar="CSV", help="unlabelled posts of posts.jsonl (columns id,drug,...)")
    e.add_argument("--accounts", metavar="CSV", help="accounts without both expert labels "
                                                     "(columns username,expert1,expert2,...)")
    lab = sub.add_parser("label", help="merge labels from CSV files into a ROOT")
    lab.add_argument("root")
    lab.add_argument("--posts", metavar="CSV", help="columns id,drug (0, 1 or empty)")
    lab.add_argument("--accounts", metavar="CSV", help="columns username,expert1,expert2 (0, 1 or empty)")
    lab.add_argument("--relabel", action="store_true", help="also change labels that are already set")
    x = sub.add_parser("export-labelstudio", help="write Label Studio projects (config.xml, tasks.json) for "
                                                   "labelling posts and accounts with their pictures")
    x.add_argument("root")
    x.add_argument("--out", required=True, metavar="DIR", help="writes DIR/posts/ and DIR/accounts/")
    only = x.add_mutually_exclusive_group()
    only.add_argument("--posts", action="store_true", help="only the posts (posts.jsonl and the timelines)")
    only.add_argument("--accounts", action="store_true", help="only the accounts")
    x.add_argument("--only-unlabelled", action="store_true",
                   help="only posts with drug null and accounts without both expert labels")
    x.add_argument("--pseudonymize", metavar="KEYFILE",
                   help="show keyed pseudonyms instead of usernames, @mentions and post ids (the key is created "
                        "when missing and must stay outside ROOT; import-labelstudio needs the same key)")
    x.add_argument("--document-root", metavar="DIR",
                   help="the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: the folder above ROOT)")
    m = sub.add_parser("import-labelstudio", help="merge two experts' annotations from Label Studio JSON "
                                                  "exports into a ROOT; print agreement and kappa")
    m.add_argument("exports", nargs="+", metavar="EXPORT.json", help="Label Studio JSON export(s)")
    m.add_argument("--root", required=True, help="the dataset folder the tasks were exported from")
    m.add_argument("--annotators", required=True, metavar="NAME=expert1,NAME=expert2",
                   help="Label Studio user id or email (or an export file: all its annotations) of each expert")
    m.add_argument("--on-disagreement", default="unlabelled", choices=["unlabelled", "expert1", "expert2"],
                   help="a post the experts disagree on stays unlabelled until settled (default) or takes one "
                        "expert's answer")
    m.add_argument("--relabel", action="store_true",
                   help="also replace labels set before any import-labelstudio (by `label` or in the data)")
    m.add_argument("--disagreements", metavar="CSV", help="also write the disagreements to this CSV file "
                                                          "(fill in drug, then `label ROOT --posts CSV`)")
    m.add_argument("--pseudonymize", metavar="KEYFILE", help="the key the tasks were exported with")
    m.add_argument("--url", default="http://localhost:8080",
                   help="the Label Studio server, for the links to the tasks (default http://localhost:8080)")
    w = sub.add_parser("where", help="print the ROOT of a synthetic world (generated on first use)")
    w.add_argument("--preset", default="paper",
                   help="tiny, small, paper, deploy or hard (default: paper, the main job's)")
    w.add_argument("--seed", type=int, default=0, help="the world's seed (default 0)")
    w.add_argument("--image-size", type=int, default=96, help="the size its pictures are drawn at (default 96)")
    w.add_argument("--data-dir", metavar="DIR",
                   help="the cache folder (default: $DRUGJAX_DATA_DIR, else ~/.cache/drugjax)")
    return parser


class UsageError(UserError):
    """A command line that cannot run as given (a ROOT that is not a folder, no CSV named)."""


def _existing_root(path: str, what: str = "") -> Path:
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"dataset ROOT {root} is not a folder{what}")
    return root


def _validate(args) -> int:
    from drugjax.data.validate import print_report, validate, write_rejections

    root = _existing_root(args.root, "; pass the folder that holds posts.jsonl, web.jsonl and accounts.jsonl")
    report = validate(root, max_pixels=args.max_pixels)
    print_report(report, sys.stdout)
    if args.rejected:
        write_rejections(report, args.rejected)
        print(f"wrote {len(report.rejections)} rejections to {escape_controls(args.rejected)}")
    return 0 if report.ok else 1


def _import(args) -> int:
    from drugjax.data import instaloader_import as imp
    from drugjax.data.pseudonym import Pseudonymizer, load_or_create_key

    pseudo, created = None, False
    if args.pseudonymize:
        try:
            key, created = load_or_create_key(Path(args.pseudonymize),
                                              forbidden=[Path(args.out), *map(Path, args.sources)])
        except OSError as e:
            raise UsageError(f"key file {args.pseudonymize}: {e}") from None
        pseudo = Pseudonymizer(key)
    report = imp.import_folders(args.sources, args.out, pseudonymizer=pseudo, copy=args.copy)
    if created:
        report.key_created = Path(args.pseudonymize)
    imp.print_report(report, sys.stdout)
    return 1 if report.problems else 0


def _root_with_csv_files(args) -> Path:
    """The ROOT of ``export-unlabelled`` / ``label``, which need at least one CSV file."""
    root = _existing_root(args.root)
    if not (args.posts or args.accounts):
        raise UsageError("pass --posts CSV and/or --accounts CSV")
    return root


def _export(args) -> int:
    from drugjax.data.labels import export_unlabelled

    counts = export_unlabelled(_root_with_csv_files(args), posts_csv=args.posts, accounts_csv=args.accounts)
    for what, n in sorted(counts.items()):
        print(f"  {n:>7}  {what}")
    return 0


def _label(args) -> int:
    from drugjax.data.labels import apply_labels

    report = apply_labels(_root_with_csv_files(args), posts_csv=args.posts, accounts_csv=args.accounts,
                          relabel=args.relabel)
    for what, n in sorted(report.counts.items()):
        print(f"  {n:>7}  {what}")
    if report.problems:
        print(f"not applied ({len(report.problems)} rows; the others were):")
        for p in report.problems:
            print(f"  {p}")
        return 1
    print("every row applied")
    return 0


def _pseudonymizer(keyfile: str | None, forbidden: list[str], create: bool):
    from drugjax.data.pseudonym import Pseudonymizer, load_or_create_key

    if not keyfile:
        return None
    if not create and not Path(keyfile).is_file():
        raise UsageError(f"key file {keyfile} does not exist; pass the key the tasks were exported with")
    try:
        key, created = load_or_create_key(Path(keyfile), forbidden=[Path(f) for f in forbidden])
    except OSError as e:
        raise UsageError(f"key file {keyfile}: {e}") from None
    if created:
        print(f"created a new pseudonymisation key in {escape_controls(keyfile)}: keep it outside ROOT; "
              f"import-labelstudio needs it")
    return Pseudonymizer(key)


def _export_labelstudio(args) -> int:
    from drugjax.data.labelstudio import export_labelstudio

    root = _existing_root(args.root)
    pseudo = _pseudonymizer(args.pseudonymize, [args.root, args.out], create=True)
    counts = export_labelstudio(root, args.out, posts=not args.accounts, accounts=not args.posts,
                                only_unlabelled=args.only_unlabelled, pseudonymizer=pseudo,
                                document_root=args.document_root)
    for what, n in sorted(counts.items()):
        print(f"  {n:>7}  {escape_controls(what)}")
    doc_root = os.path.realpath(args.document_root or Path(os.path.realpath(root)).parent)
    print(f"wrote config.xml and tasks.json under {escape_controls(args.out)}; serve the pictures with\n"
          f"  LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
          f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={escape_controls(doc_root)} label-studio start\n"
          f"and add to each project a Local Files storage with the path {escape_controls(os.path.realpath(root))} "
          f"(do not sync it: the tasks come from tasks.json); docs/labelling.md")
    return 0


def _import_labelstudio(args) -> int:
    from drugjax.data import labelstudio as ls
    from drugjax.data.labels import LabelFileError

    root = _existing_root(args.root)
    names = ls.parse_annotators(args.annotators)
    if args.disagreements and Path(args.disagreements).exists():
        raise LabelFileError(f"{args.disagreements} exists; it is not overwritten (choose another name)")
    pseudo = _pseudonymizer(args.pseudonymize, [args.root], create=False)
    report = ls.import_labelstudio(args.exports, root, names, on_disagreement=args.on_disagreement,
                                   relabel=args.relabel, pseudonymizer=pseudo, url=args.url)
    print(f"tasks: {report.tasks['post']} posts, {report.tasks['account']} accounts")
    print("annotations:")
    for who, n in sorted(report.per_annotator.items()):
        print(f"  {n:>7}  {escape_controls(who)}")
    print("agreement (tasks both experts answered yes or no; kind: both said drug-related):")
    for question, a in report.agreement.items():
        kappa = "undefined (one answer only)" if a["kappa"] != a["kappa"] else f"{a['kappa']:.3f}"
        print(f"  {question:<7} {a['both']:>5} tasks  agreement {a['agreement']:5.1f} %  Cohen's kappa {kappa}")
    for what, n in sorted(report.counts.items()):
        print(f"  {n:>7}  {escape_controls(what)}")
    text = ls.disagreements_csv(report.disagreements)
    print(f"disagreements ({len(report.disagreements)}; settle a post's: fill in drug, then "
          f"`python -m drugjax.data label ROOT --posts FILE`):")
    print(ls.disagreements_csv(report.disagreements, for_terminal=True), end="")
    if args.disagreements:
        from drugjax.data import rootfiles

        rootfiles.write_bytes(Path(args.disagreements), text.encode("utf-8"))
        print(f"wrote them to {escape_controls(args.disagreements)}")
    if report.problems:
        print(f"not imported ({len(report.problems)}; the rest was):")
        for p in report.problems:
            print(f"  {p}")
        return 1
    return 0


def _where(args: argparse.Namespace) -> int:
    import logging

    from drugjax.data.builders import default_data_dir, synthetic_root

    # "generating the synthetic world ... (first use)" on stderr; stdout holds the path only.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    print(synthetic_root(args.preset, args.seed, args.image_size, data_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0: all good, 1: some records or rows were
    rejected / not imported / not applied and are listed, 2: usage error, printed as one
    ``error:`` line)."""
    args = _parser().parse_args(argv)
    command = {"validate": _validate, "import-instaloader": _import, "export-unlabelled": _export,
               "label": _label, "export-labelstudio": _export_labelstudio,
               "import-labelstudio": _import_labelstudio, "where": _where}[args.command]
    try:
        return command(args)
    except USER_ERRORS as e:
        print_error(e)
        return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... | head`: the reader left; not an error of the data
        sys.stderr.close()
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports it
