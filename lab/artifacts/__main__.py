"""python -m lab.artifacts build [--force] [names...]"""

import argparse
import json
import sys

from . import build_all


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.artifacts")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build or reuse the lab mirror's artifacts")
    build.add_argument("--force", action="store_true", help="rebuild even when the cache is warm")
    build.add_argument("--json", action="store_true", help="also print the result as JSON")
    build.add_argument("names", nargs="*", help="components (default: all)")
    args = parser.parse_args(argv)

    try:
        result = build_all(force=args.force, names=args.names or None,
                           log=lambda m: print(m, flush=True))
    except (RuntimeError, ValueError, OSError) as exc:  # GoError is a RuntimeError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
