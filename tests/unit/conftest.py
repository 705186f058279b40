import pytest


@pytest.fixture(autouse=True, scope="session")
def _pki_dir(tmp_path_factory):
    """Roles rendered in unit tests issue certificates: into a directory of the run, never the operator's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SENTINEL_PKI_DIR", str(tmp_path_factory.mktemp("pki")))
    yield
    mp.undo()
