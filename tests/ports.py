"""Free TCP ports on 127.0.0.1 for the servers tests start themselves."""

import socket


def free_port(candidates: range | None = None) -> int:
    """The first port of `candidates` nobody listens on, or one the kernel picks when None.

    Picking from a range keeps a test inside the ports it was given (the lab and the
    helpers each have their own); the port is free when checked, so start the server soon.
    """
    if candidates is None:
        candidates = range(0, 1)  # port 0: the kernel chooses
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")
