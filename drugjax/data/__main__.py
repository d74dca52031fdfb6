"""``python -m drugjax.data validate ROOT [--rejected PATH] [--max-pixels N]``."""

from __future__ import annotations

import argparse
import sys

from drugjax.data.schema import DEFAULT_MAX_PIXELS


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0: nothing rejected, 1: rejections, 2: usage)."""
    parser = argparse.ArgumentParser(prog="python -m drugjax.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check every record and image of a dataset ROOT")
    v.add_argument("root", help="dataset folder holding posts.jsonl, web.jsonl, accounts.jsonl, ...")
    v.add_argument("--rejected", metavar="PATH", help="also write the rejections here as JSON lines")
    v.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"images with more pixels are rejected as decompression bombs "
                        f"(default {DEFAULT_MAX_PIXELS})")
    args = parser.parse_args(argv)

    from pathlib import Path

    from drugjax.data.validate import print_report, validate, write_rejections

    root = Path(args.root)
    if not root.is_dir():
        print(f"error: dataset ROOT {root} is not a folder; pass the folder that holds "
              f"posts.jsonl, web.jsonl and accounts.jsonl", file=sys.stderr)
        return 2
    report = validate(root, max_pixels=args.max_pixels)
    print_report(report, sys.stdout)
    if args.rejected:
        write_rejections(report, args.rejected)
        print(f"wrote {len(report.rejections)} rejections to {args.rejected}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... | head`: the reader left; not an error of the data
        sys.stderr.close()
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports it
