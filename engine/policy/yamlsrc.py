"""YAML that remembers where each value came from, for ``file:line`` errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml


class LDict(dict):
    line: int = 0
    key_lines: dict[Any, int]


class LList(list):
    line: int = 0
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it (about 10x faster; same marks, same constructors).
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LDict:
    result = LDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise PolicyError(loader.name, key_node.start_mark.line + 1, f"duplicate key '{key}'")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    result = LList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _timestamp(loader: _Loader, node: yaml.ScalarNode):
    # An impossible date (2024-02-30) stays text, so validation can say which field is wrong.
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


class PolicyError(Exception):
    """A problem in a policy file, located to the line."""

    def __init__(self, file: str, line: int, message: str):
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message


# A policy file is a few levels deep and a few thousand values long; far beyond either is a
# mistake or an attack (a "billion laughs" of aliases), refused before it is built.
MAX_DEPTH = 64
MAX_NODES = 200_000


def load_yaml(path: Path, shown_as: str) -> Any:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise PolicyError(shown_as, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8") \
            from None
    loader = _Loader(text)
    loader.name = shown_as
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, shown_as)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PolicyError(shown_as, line, f"YAML syntax: {exc.problem or exc.context}") from None
    except RecursionError:  # the pure-Python parser recurses per level; libyaml stops at its own limit
        mark = loader.get_mark() if hasattr(loader, "get_mark") else None
        raise PolicyError(shown_as, mark.line + 1 if mark else 1,
                          f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node, shown_as: str) -> None:
    """Depth and size as the document would be once its aliases are expanded, walked without
    expanding them: the walk stops at the first limit passed."""
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        line = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise PolicyError(shown_as, line, f"nested too deeply (more than {MAX_DEPTH} levels)")
        if count > MAX_NODES:
            raise PolicyError(shown_as, line, f"too many values once aliases are expanded (over {MAX_NODES:,})")
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def line_of(document: Any, loc: Iterable[Any]) -> int:
    """The line of the deepest node a location path reaches."""
    node = document
    line = getattr(document, "line", 1)
    for part in loc:
        if isinstance(node, LDict) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line
