"""The venv the Makefile builds keeps `urllib3` as urllib3.

grafana-client depends on urllib3-future, whose wheel installs a .pth that copies
itself over the `urllib3` package at interpreter start. Through `requests` that
changed request headers (the Sentry e2e test lost X-Correlation-ID). The Makefile
installs urllib3-future from source with URLLIB3_NO_OVERRIDE=1 to keep the two apart.
"""

import importlib.util
from pathlib import Path

import urllib3


def test_urllib3_is_not_replaced_by_urllib3_future():
    # traffic_police exists only in urllib3-future
    assert importlib.util.find_spec("urllib3.util.traffic_police") is None, (
        f"{Path(urllib3.__file__).parent} is urllib3-future: rebuild the venv: rm -rf .venv && make unit"
    )
    site_packages = Path(urllib3.__file__).parent.parent
    assert not list(site_packages.glob("urllib3_future*.pth")), "urllib3-future's override .pth is installed: rebuild the venv"
