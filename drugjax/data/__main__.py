"""``python -m drugjax.data COMMAND``: check a dataset ROOT, import Instaloader
downloads into one, and move labels in and out of it as CSV.

  validate ROOT [--rejected PATH] [--max-pixels N]
  import-instaloader SRC... --out ROOT [--pseudonymize KEYFILE] [--copy]
  export-unlabelled ROOT [--posts CSV] [--accounts CSV]
  label ROOT [--posts CSV] [--accounts CSV] [--relabel]
  where [--preset P] [--seed S] [--image-size N] [--data-dir DIR]

``where`` prints the ROOT of a synthetic world (by default the paper-sized one that
``python train.py`` and ``python evaluate.py`` use), generating it on first use, so that
``python -m drugjax.detect "$(python -m drugjax.data where)" ...`` works.
"""

from __future__ import annotations

import argparse
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
               "label": _label, "where": _where}[args.command]
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
