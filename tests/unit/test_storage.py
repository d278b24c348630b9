"""The local storage: content addressing, atomic writes, uploads adopted without a copy."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from backend.storage import Incoming, LocalStorage, TooLarge, check_key


def test_put_is_content_addressed_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    stored = storage.put(io.BytesIO(b"hello"))
    assert stored.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert stored.size == 5
    assert storage.exists(stored.key)
    assert storage.size(stored.key) == 5
    assert (
        storage.local_path(stored.key) == tmp_path / stored.key[:2] / stored.key[2:4] / stored.key
    )
    assert list(storage.keys()) == [stored.key]
    assert list((tmp_path / "incoming").iterdir()) == []
    with storage.open(stored.key) as handle:
        assert handle.read() == b"hello"
    storage.delete(stored.key)
    assert not storage.exists(stored.key)
    storage.delete(stored.key)  # deleting twice is fine


def test_put_past_the_limit_stores_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(TooLarge):
        storage.put(io.BytesIO(b"x" * 10), max_bytes=9)
    assert list(storage.keys()) == []
    assert list((tmp_path / "incoming").iterdir()) == []


def test_an_incoming_upload_is_renamed_into_place_not_copied(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    incoming = storage.incoming()
    incoming.write(b"part one, ")
    incoming.write(b"part two")
    incoming.seek(0)
    assert incoming.read(4) == b"part"
    assert incoming.readable()
    assert incoming.seekable()
    inode = incoming.path.stat().st_ino
    stored = storage.put(incoming, max_bytes=100)
    assert stored.key == hashlib.sha256(b"part one, part two").hexdigest()
    assert storage.path_for(stored.key).stat().st_ino == inode  # the same file, renamed
    incoming.close()
    assert storage.exists(stored.key)


def test_an_incoming_upload_not_adopted_deletes_itself(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    refused = storage.incoming()
    refused.write(b"y" * 20)
    with pytest.raises(TooLarge):
        storage.put(refused, max_bytes=10)
    refused.close()
    abandoned = storage.incoming()
    abandoned.close()
    assert list((tmp_path / "incoming").iterdir()) == []
    assert list(storage.keys()) == []


def test_an_incoming_file_of_another_storage_is_copied(tmp_path: Path) -> None:
    other = Incoming(tmp_path / "elsewhere")
    other.write(b"copied")
    other.seek(0)
    storage = LocalStorage(tmp_path / "store")
    stored = storage.put(other)
    other.close()
    assert storage.open(stored.key).read() == b"copied"


def test_keys_must_be_sha256_digests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        check_key("../../etc/passwd")
    with pytest.raises(ValueError, match="not a storage key"):
        LocalStorage(tmp_path).open("A" * 64)
