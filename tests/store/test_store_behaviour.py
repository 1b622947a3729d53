"""One behavioural suite for every store: a directory, moto and SeaweedFS (real SigV4)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer.store import AlreadyExists, NotFound, Store, StoreError, TooLarge, open_url
from trainer.store.memory import MemoryStore

# Key parts: S3-safe characters, never '.' or '..' (those are refused as escaping the root).
_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_keys = st.lists(_part, min_size=1, max_size=4).map("/".join)


def test_put_get_exists_list_delete(store: Store) -> None:
    assert not store.exists("a.txt")
    store.put("a.txt", b"hello")
    assert store.exists("a.txt")
    assert store.get("a.txt") == b"hello"
    store.put("a.txt", b"replaced")
    assert store.get("a.txt") == b"replaced"
    assert store.list("") == ["a.txt"]
    store.delete("a.txt")
    assert not store.exists("a.txt")
    assert store.list("") == []
    store.delete("a.txt")  # deleting an absent object is not an error


def test_missing_object_raises_not_found_naming_the_url(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        store.get("no/such/key.json")
    assert store.url("no/such/key.json") in str(info.value)


def test_empty_object(store: Store) -> None:
    store.put("empty", b"")
    assert store.get("empty") == b""
    assert store.list_sizes("") == {"empty": 0}


def test_nested_keys_and_folder_prefixes(store: Store) -> None:
    for key in ("s/trials/t1/result.json", "s/trials/t1/metrics.jsonl", "s/trials/t10/x", "s/y"):
        store.put(key, key.encode())
    assert store.list("s/trials") == [
        "s/trials/t1/metrics.jsonl",
        "s/trials/t1/result.json",
        "s/trials/t10/x",
    ]
    # A prefix is a folder: "s/trials/t1" does not match "s/trials/t10".
    assert store.list("s/trials/t1") == ["s/trials/t1/metrics.jsonl", "s/trials/t1/result.json"]
    assert store.list("s/trials/t1/") == store.list("s/trials/t1")
    assert store.list("nothing-here") == []
    assert store.list("")[-1] == "s/y"
    assert store.get("/s/y") == b"s/y"  # a leading '/' is relative to the root too


def test_json_helpers(store: Store) -> None:
    doc = {"loss": 0.25, "nested": {"list": [1, 2, 3]}, "name": "trial-1"}
    store.put_json("x/doc.json", doc)
    assert store.get_json("x/doc.json") == doc
    store.put("x/bad.json", b"{not json")
    with pytest.raises(StoreError, match="not valid JSON") as info:
        store.get_json("x/bad.json")
    assert store.url("x/bad.json") in str(info.value)


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "a/./b", "a/.."])
def test_key_escaping_the_root_is_refused(store: Store, key: str) -> None:
    with pytest.raises(StoreError, match="escapes the store root"):
        store.put(key, b"x")
    with pytest.raises(StoreError, match="escapes the store root"):
        store.get(key)


def test_file_store_never_writes_outside_its_root(file_store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        file_store.put("../../escaped", b"x")
    assert not (tmp_path.parent.parent / "escaped").exists()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(objects=st.dictionaries(_keys, st.binary(max_size=256), min_size=1, max_size=5))
def test_any_keys_round_trip(store: Store, objects: dict[str, bytes]) -> None:
    # A key that is also a "folder" of another key cannot exist on a file system: drop those.
    keys = sorted(k for k in objects if not any(o.startswith(k + "/") for o in objects))
    for name in store.list(""):
        store.delete(name)
    for key in keys:
        store.put(key, objects[key])
    assert store.list("") == keys
    assert {k: store.get(k) for k in keys} == {k: objects[k] for k in keys}
    assert store.list_sizes("") == {k: len(objects[k]) for k in keys}


def test_large_object_round_trip(store: Store, tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    store.put("big/blob.bin", data)
    assert store.get("big/blob.bin") == data
    src, dst = tmp_path / "in.bin", tmp_path / "out" / "copy.bin"
    src.write_bytes(data[::-1])
    store.put_file(src, "big/file.bin")
    store.get_file("big/file.bin", dst)
    assert dst.read_bytes() == data[::-1]
    assert store.list_sizes("big") == {"big/blob.bin": len(data), "big/file.bin": len(data)}


def test_concurrent_reader_never_sees_a_partial_object(store: Store) -> None:
    # Two versions of different sizes: a torn read would be a prefix/mix of them.
    versions = [b"a" * 1_500_000, b"b" * 700_000]
    store.put("state.json", versions[0])
    stop = threading.Event()
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append(store.get("state.json"))
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(24):
            store.put("state.json", versions[i % 2])
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors
    assert seen, "the reader never completed a read"
    torn = [len(s) for s in seen if s not in versions]
    assert not torn, f"reader saw partial objects of sizes {torn[:5]}"


def test_download_prefix_caches_by_size(store: Store, tmp_path: Path) -> None:
    files = {"data/cifar/batch_1": b"1" * 1000, "data/cifar/meta/names": b"x", "data/other": b"o"}
    for key, body in files.items():
        store.put(key, body)
    local = tmp_path / "cache"
    assert store.download_prefix("data/cifar", local) == 2
    assert (local / "batch_1").read_bytes() == files["data/cifar/batch_1"]
    assert (local / "meta" / "names").read_bytes() == b"x"
    assert not (local / "other").exists()
    assert store.download_prefix("data/cifar/", local) == 0  # already cached
    (local / "batch_1").write_bytes(b"truncated")
    assert store.download_prefix("data/cifar", local) == 1  # a size mismatch is fetched again
    assert (local / "batch_1").read_bytes() == files["data/cifar/batch_1"]
    assert store.download_prefix("data/none", tmp_path / "empty") == 0
    assert (tmp_path / "empty").is_dir()  # an empty prefix still gives the caller its folder


def test_open_url_gives_the_store_and_key(store: Store) -> None:
    if isinstance(store, MemoryStore):
        pytest.skip("an in-memory store has no URL to open, by design (simulations pass it in)")
    store.put("sw/trials/t1/trial.json", b"{}")
    other, key = open_url(store.url("sw/trials/t1/trial.json"))
    assert key == "trial.json"
    assert other.get(key) == b"{}"
    assert other.root == store.url("sw/trials/t1")


def test_put_new_creates_once_and_never_overwrites(store: Store) -> None:
    store.put_new("j/000000000001.json", b"first")
    with pytest.raises(AlreadyExists) as info:
        store.put_new("j/000000000001.json", b"second")
    assert store.url("j/000000000001.json") in str(info.value)
    assert store.get("j/000000000001.json") == b"first"  # the loser changed nothing
    store.put("j/000000000001.json", b"put overwrites")  # plain put still replaces
    assert store.get("j/000000000001.json") == b"put overwrites"


def test_put_new_races_have_exactly_one_winner(store: Store) -> None:
    winners: list[int] = []
    losers: list[int] = []
    barrier = threading.Barrier(6)

    def race(i: int) -> None:
        barrier.wait()
        try:
            store.put_new("race/entry", str(i).encode())
            winners.append(i)
        except AlreadyExists:
            losers.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(winners) == 1 and len(losers) == 5
    assert store.get("race/entry") == str(winners[0]).encode()


def test_list_after_gives_one_folders_tail_in_order(store: Store) -> None:
    for i in (3, 1, 12, 2):
        store.put(f"s/journal/{i:012d}.json", b"x")
    store.put("s/journal/nested/000000000099.json", b"not in the folder itself")
    store.put("s/journalx/000000000005.json", b"another folder")
    start = "s/journal/000000000002.json"
    assert store.list_after("s/journal", start) == [
        "s/journal/000000000003.json",
        "s/journal/000000000012.json",
    ]
    assert store.list_after("s/journal", "") == [f"s/journal/{i:012d}.json" for i in (1, 2, 3, 12)]
    assert store.list_after("s/none", "") == []


def test_get_limited_refuses_what_is_over_the_limit_and_names_the_size(store: Store) -> None:
    store.put("r/small.json", b"x" * 100)
    store.put("r/big.json", b"y" * 5000)
    assert store.get_limited("r/small.json", 100) == b"x" * 100  # exactly the limit is fine
    with pytest.raises(TooLarge) as info:
        store.get_limited("r/big.json", 1000)
    assert info.value.size == 5000 and info.value.max_bytes == 1000
    assert "5,000 bytes, more than the 1,000 bytes" in str(info.value)
    assert store.url("r/big.json") in str(info.value)
    with pytest.raises(NotFound):
        store.get_limited("r/absent.json", 1000)
