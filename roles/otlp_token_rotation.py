"""Rotate the gateway's OTLP bearer tokens in two phases, with no request refused on the way.

    python -m roles.otlp_token_rotation <environment> status
    python -m roles.otlp_token_rotation <environment> begin     # then converge every host
    python -m roles.otlp_token_rotation <environment> promote   # then converge every host
    python -m roles.otlp_token_rotation <environment> finish    # then converge every host

- `begin`: a next token per sender. Converge: the gateways accept the current and the next; senders unchanged.
- `promote`: the next tokens become current, the old ones `previous`. Converge: each sender sends its new
  token; the gateways accept both (so the order in which hosts converge does not matter).
- `finish`: the previous tokens are dropped. Converge: an old token is refused.

A sender's collector reads its token file when it changes (bearertokenauth follows the file), and the
gateway its list; the converge restarts neither for a token (roles/otel_collector). Nothing printed holds
a token (roles/_otlp_tokens.py).
"""

from __future__ import annotations

import argparse
import sys

from roles import _otlp_tokens as tokens
from roles._pki import PkiError

PHASES = {
    tokens.STEADY: "steady: one token per sender",
    tokens.BEGUN: "begun: the next tokens are accepted beside the current ones (converge every host, then promote)",
    tokens.PROMOTED: "promoted: the senders use their new tokens; the old ones are still accepted (converge every host, then finish)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roles.otlp_token_rotation", description=__doc__.split("\n")[0])
    parser.add_argument("environment")
    parser.add_argument("step", choices=("status", "begin", "promote", "finish"))
    args = parser.parse_args(argv)
    try:
        if args.step == "status":
            directory = tokens.token_dir(args.environment)
            names = tokens._current_senders(directory) if directory.is_dir() else []
            print(f"{args.environment}: {PHASES[tokens.phase(args.environment)]}")
            print(f"  senders: {', '.join(names) if names else 'none yet (a converge makes them)'}")
            return 0
        done = {"begin": tokens.begin, "promote": tokens.promote, "finish": tokens.finish}[args.step](args.environment)
    except PkiError as err:
        print(f"otlp_token_rotation: {err}", file=sys.stderr)
        return 2
    print(f"{args.step}: {', '.join(done) if done else 'no sender'}; now converge every host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
