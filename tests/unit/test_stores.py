"""Which stores `FILES_STORAGE_URL` picks, and the local spool of job inputs."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest

from backend.s3_storage import S3Spool, S3Storage
from backend.spool import LocalSpool, Spooled, check_name, new_name
from backend.storage import LocalStorage
from backend.stores import open_stores


def config(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    return {"FILES_DIR": str(tmp_path / "files"), "SPOOL_DIR": str(tmp_path / "spool"),
            "ENV": "development", **settings}  # fmt: skip


def test_unset_means_files_dir_and_spool_dir(tmp_path: Path) -> None:
    storage, spool = open_stores(config(tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "files"
    assert isinstance(spool, LocalSpool)
    assert spool.folder == tmp_path / "spool"


def test_a_file_url_names_the_folder(tmp_path: Path) -> None:
    storage, _ = open_stores(config(tmp_path, FILES_STORAGE_URL=f"file://{tmp_path}/my%20files"))
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "my files"


def test_an_s3_url_in_production_touches_nothing_at_startup(tmp_path: Path) -> None:
    url = "s3://media/app?endpoint_url=http://127.0.0.1:1&region=eu-west-1"
    settings = {"ENV": "production", "FILES_STORAGE_URL": url, "AWS_ACCESS_KEY_ID": "a",
                "AWS_SECRET_ACCESS_KEY": "b"}  # fmt: skip
    storage, spool = open_stores(config(tmp_path, **settings))
    assert isinstance(storage, S3Storage)
    assert isinstance(spool, S3Spool)
    assert (storage.bucket.name, storage.bucket.key("x")) == ("media", "app/x")


@pytest.mark.parametrize("url", ["ftp://host/files", "s3://media?bogus=1"])
def test_other_urls_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="FILES_STORAGE_URL"):
        open_stores(config(tmp_path, FILES_STORAGE_URL=url))


def test_the_local_spool_writes_copies_and_purges(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path / "spool")
    assert spool.purge(older_than_seconds=0) == 0  # no folder yet
    name = spool.write(io.BytesIO(b"sku\n"), suffix=".csv")
    assert spool.exists(name)
    with spool.open(name) as handle:
        assert handle.read() == b"sku\n"
    copied = spool.copy(name)
    assert copied != name
    assert (tmp_path / "spool" / copied).read_bytes() == b"sku\n"
    spool.delete(name)
    assert not spool.exists(name)
    with pytest.raises(FileNotFoundError):
        spool.copy(name)
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [copied]
    old = time.time() - 7200
    os.utime(tmp_path / "spool" / copied, (old, old))
    assert spool.purge(older_than_seconds=3600) == 1
    assert not spool.exists(copied)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    class Broken:
        def read(self, size: int = -1, /) -> bytes:
            raise OSError("client gone")

    spool = LocalSpool(tmp_path / "spool")
    with pytest.raises(OSError, match="client gone"):
        spool.write(Broken(), suffix=".csv")
    assert list((tmp_path / "spool").iterdir()) == []


def test_names_never_reach_outside_the_spool() -> None:
    name = new_name(".csv")
    assert check_name(name) == name
    assert check_name(f"/old/var/spool/{name}") == name  # a job queued with a path
    for bad in ("../x.csv", "a.csv", f"{name}/..", ""):
        with pytest.raises(ValueError, match="spool name"):
            check_name(bad)
    with pytest.raises(ValueError, match="suffix"):
        new_name("/../x")


def test_spooled_inputs_are_read_only() -> None:
    with pytest.raises(ValueError, match="read only"):
        Spooled(new_name(".csv")).open("wb")
