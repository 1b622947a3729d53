"""MemoryStore behaves as FileStore does: the same calls give the same answers (and errors)."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.store import FileStore, NotFound, Store, StoreError
from trainer.store.memory import MemoryStore


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else FileStore(tmp_path)


def test_root_is_a_memory_url() -> None:
    assert MemoryStore().root == "memory://sim"
    assert MemoryStore("bench").url("a/b.json") == "memory://bench/a/b.json"


def test_put_get_exists_list_delete(store: Store) -> None:
    assert not store.exists("a.txt")
    store.put("a.txt", b"hello")
    assert store.exists("a.txt") and store.get("a.txt") == b"hello"
    store.put("a.txt", b"replaced")
    assert store.get("a.txt") == b"replaced"
    assert store.list("") == ["a.txt"]
    store.delete("a.txt")
    assert not store.exists("a.txt") and store.list("") == []
    store.delete("a.txt")  # idempotent


def test_missing_object_raises_not_found_naming_the_url(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        store.get("no/such/key.json")
    assert store.url("no/such/key.json") in str(info.value)


def test_folders_lists_and_sizes(store: Store) -> None:
    for key in ("s/trials/t1/result.json", "s/trials/t1/metrics.jsonl", "s/trials/t10/x", "s/y"):
        store.put(key, key.encode())
    assert store.list("s/trials") == [
        "s/trials/t1/metrics.jsonl",
        "s/trials/t1/result.json",
        "s/trials/t10/x",
    ]
    assert store.list("s/trials/t1") == store.list("s/trials/t1/") == store.list("/s/trials/t1")
    assert store.list("s/trials/t1") == ["s/trials/t1/metrics.jsonl", "s/trials/t1/result.json"]
    assert store.list("s/y") == [] and store.list("nothing") == []
    assert store.list_sizes("s") == {k: len(k) for k in store.list("s")}
    assert store.get("/s/y") == b"s/y"
    store.put_json("j/doc.json", {"a": [1, 2]})
    assert store.get_json("j/doc.json") == {"a": [1, 2]}


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "a/./b", "a/.."])
def test_key_escaping_the_root_is_refused(store: Store, key: str) -> None:
    with pytest.raises(StoreError, match="escapes the store root"):
        store.put(key, b"x")
    with pytest.raises(StoreError, match="escapes the store root"):
        store.get(key)


def test_concurrent_puts_are_whole_objects() -> None:
    store = MemoryStore()
    blobs = [bytes([i]) * 10_000 for i in range(8)]

    def writer(blob: bytes) -> None:
        for n in range(200):
            store.put("k", blob)
            store.put(f"w/{blob[0]}/{n}", blob)

    threads = [threading.Thread(target=writer, args=(b,)) for b in blobs]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        if store.exists("k"):
            seen.add(store.get("k"))
        store.list("w")
    for t in threads:
        t.join()
    assert seen <= set(blobs)
    assert len(store.list("w")) == 8 * 200


# Operation sequences run on both stores must answer alike. Folder names have no '.', file names
# end in ".f", so a key is never both a file and a folder (which a file system would refuse).
_folder = st.sampled_from(["a", "b", "ab", "a-b"])
_keys = st.builds(
    lambda parts, leaf: "/".join([*parts, f"{leaf}.f"]),
    st.lists(_folder, max_size=3),
    st.sampled_from(["x", "y", "z"]),
)
_prefixes = st.lists(_folder, max_size=3).map("/".join)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _keys, st.binary(max_size=8)),
        st.tuples(st.just("get"), _keys),
        st.tuples(st.just("exists"), _keys),
        st.tuples(st.just("delete"), _keys),
        st.tuples(st.just("list"), _prefixes),
        st.tuples(st.just("list_sizes"), _prefixes),
    ),
    max_size=30,
)


def _apply(store: Store, op: tuple[Any, ...]) -> Any:
    call: Callable[..., Any] = getattr(store, op[0])
    try:
        return call(*op[1:])
    except NotFound:
        return "NotFound"


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_memory_store_answers_as_the_file_store_does(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        memory, files = MemoryStore(), FileStore(tmp)
        for op in ops:
            assert _apply(memory, op) == _apply(files, op), op
        assert memory.list() == files.list()
