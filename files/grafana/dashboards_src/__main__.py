"""python -m files.grafana.dashboards_src [--check]: write (or check) files/grafana/dashboards/<uid>.json."""

from __future__ import annotations

import argparse
import sys

from files.grafana.dashboards_src import OUTPUT_DIR
from files.grafana.dashboards_src.generate import metrics_of, render_all


def print_queries() -> None:
    import json

    for uid, text in render_all().items():
        for panel in json.loads(text)["panels"]:
            for target in panel.get("targets", []):
                source = target["datasource"]["uid"]
                query = target.get("expr") or target.get("query")
                needs = ", ".join(metrics_of(query)) if source == "prometheus" else f"{source} store"
                print(f"{uid}\t{panel['title']}\t{target['refId']}\t{needs}\t{query}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m files.grafana.dashboards_src", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file differs")
    parser.add_argument("--list", action="store_true", help="print every panel query and the metrics it needs")
    args = parser.parse_args(argv)
    if args.list:
        print_queries()
        return 0
    rendered = render_all()
    stale = sorted(
        {p.stem for p in OUTPUT_DIR.glob("*.json")} - set(rendered)
        | {uid for uid, text in rendered.items() if not (OUTPUT_DIR / f"{uid}.json").is_file()
           or (OUTPUT_DIR / f"{uid}.json").read_text() != text}
    )
    if args.check:
        for uid in stale:
            print(f"stale: files/grafana/dashboards/{uid}.json", file=sys.stderr)
        return 1 if stale else 0
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    for path in OUTPUT_DIR.glob("*.json"):
        if path.stem not in rendered:
            path.unlink()
    for uid, text in rendered.items():
        (OUTPUT_DIR / f"{uid}.json").write_text(text)
        print(f"wrote files/grafana/dashboards/{uid}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
