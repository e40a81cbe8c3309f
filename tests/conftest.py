import os

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    """Fingerprint caches go to a temporary folder: the suite never writes ~/.cache/mlhw."""
    monkeypatch.setenv("MLHW_CACHE_DIR", str(tmp_path_factory.mktemp("mlhw-cache")))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder: results/, data/ and mlflow.db land there, never in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLHW_DATA_DIR", raising=False)
    return tmp_path
