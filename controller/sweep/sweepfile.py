"""Reading a sweep file: bounded, UTF-8, and YAML without its traps.

Why: ``Path.read_text`` + ``yaml.safe_load`` blocked forever on a FIFO, read ``/dev/zero`` until
memory ran out, took over a minute on a 50 MB file, raised ``UnicodeDecodeError`` and
``RecursionError`` tracebacks (a 10,000-deep nesting), let a duplicated key silently replace the
first one, and expanded an alias bomb into gigabytes. Here a sweep file must be a regular file of
at most ``MAX_BYTES``, UTF-8 (a UTF-8 BOM is accepted), with unique keys, nested at most
``MAX_DEPTH`` deep and at most ``MAX_NODES`` YAML nodes once its aliases are expanded. Every
refusal is a ``SweepFileError`` with a one-line reason (a line and column where YAML has one).
"""

from __future__ import annotations

import codecs
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 1024 * 1024  # a sweep with an inline 17-parameter space is ~3 KB
MAX_DEPTH = 64
MAX_NODES = 100_000
_MERGE = "tag:yaml.org,2002:merge"


class SweepFileError(ValueError):
    """The file cannot be read as a sweep's YAML; the message says why."""


def read_text(path: str | Path) -> str:
    """The file's text; refuses what is not a regular UTF-8 file of at most ``MAX_BYTES``."""
    p = Path(path)
    try:
        st = p.stat()  # before opening: opening a FIFO blocks until a writer comes
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
            raise SweepFileError(f"not a regular file ({kind}); give the path of a YAML file")
        with p.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded even if the file grew since the stat
    except OSError as exc:
        raise SweepFileError(f"cannot read the file ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise SweepFileError(f"larger than {MAX_BYTES // 1024} KB: not a sweep file")
    return decode(raw)


def decode(raw: bytes) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SweepFileError("the file is UTF-16; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SweepFileError(
            f"not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); save the file as UTF-8"
        ) from None


class _Refused(yaml.MarkedYAMLError):
    """A YAML document this loader does not take (``problem`` says why, ``problem_mark`` where)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, deep nesting and big alias expansions."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # The composer recurses once per level: stop well before Python's recursion limit.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise _Refused(
                problem=f"more than {MAX_NODES:,} values once its aliases are expanded",
                problem_mark=node.start_mark,
            )
        return self.construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # `<<: *base`: explicit keys override merged ones
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: the base class refuses it with its own message
                continue
            if duplicate:
                raise _Refused(
                    problem=f"duplicate key {key!r}: YAML would keep only the last one",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """Nodes in the document with every alias expanded (shared nodes counted each time), capped
    just above MAX_NODES; ``memo`` keeps it linear in the distinct nodes."""
    known = memo.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, SequenceNode):
        children = list(node.value)
    else:
        children = []
    for child in children:
        size = min(size + _expanded_size(child, memo), MAX_NODES + 1)
    memo[id(node)] = size
    return size


def load(text: str) -> Any:
    """The YAML document in ``text``; raises ``yaml.YAMLError`` (with a mark where it has one)."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
