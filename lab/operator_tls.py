"""The operator's client certificate for the lab's TLS listeners (Prometheus, Alertmanager, node_exporter),
and the operator's bearer token for the collector gateways' OTLP listeners (roles/_otlp_tokens.py).

The tests, drills and benches reach those APIs from the controller as an operator does: with the
"operator" identity the environment CA (roles/_pki.py) issues on the controller, and the CA to check
the server. Nothing here leaves the controller.
"""

from __future__ import annotations

import functools

import requests

from roles import _otlp_tokens
from roles._pki import OPERATOR, ca_state, environment_ca, pki_dir
from roles._tls import is_tls

ENVIRONMENT = "lab"


def operator_files(environment: str = ENVIRONMENT) -> tuple[str, str, str]:
    """(CA bundle, certificate, key) paths of the operator's identity, issued when due. Opened again when
    the PKI directory's CAs changed (a rollover step: python -m roles.ca_rollover), so the bundle and the
    certificate follow each phase within one test session."""
    return _operator_files(environment, ca_state(pki_dir(environment)))


@functools.cache
def _operator_files(environment: str, state: tuple) -> tuple[str, str, str]:
    ca, cert, key = environment_ca(environment).operator_files()
    return str(ca), str(cert), str(key)


def operator_kwargs(environment: str = ENVIRONMENT) -> dict:
    """requests' keyword arguments: the operator's certificate and the CA that checks the server."""
    ca, cert, key = operator_files(environment)
    return {"cert": (cert, key), "verify": ca}


def operator_session(environment: str = ENVIRONMENT) -> requests.Session:
    session = requests.Session()
    session.cert, session.verify = operator_kwargs(environment)["cert"], operator_kwargs(environment)["verify"]
    return session


def otlp_headers(environment: str = ENVIRONMENT) -> dict[str, str]:
    """The operator's OTLP token as the gateway asks for it (read each time: a rotation's `promote` switches it)."""
    return {"Authorization": f"Bearer {_otlp_tokens.token(environment, OPERATOR)}"}


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, **operator_kwargs(), **kwargs)


def post(url: str, **kwargs) -> requests.Response:
    return requests.post(url, **operator_kwargs(), **kwargs)


def scheme(listener: str) -> str:
    return "https" if is_tls(listener) else "http"
