"""The policy file's text: YAML read within bounds into its document, and written back.

Words, one meaning each: the *policy file* is this text; its *document* is the mapping it
holds (`recoup.policies.document` parses it into the configuration, `Config`).
"""

from __future__ import annotations

from typing import Any

import yaml

from recoup.core.errors import InvalidInput

# A policy file is a few kilobytes; these bounds keep a hostile one from costing more (issue
# 8.3: 1.4 KB of anchors and aliases expanded to 43 million strings; 8.8: deep nesting).
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 50


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML would silently keep the last one),
    aliases (`*name`: each one copies a whole subtree, so a short file can expand to
    millions of values), nesting deeper than MAX_DEPTH and keys that are lists or mappings."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases (*{event.anchor}) are not allowed: write the value out",
                event.start_mark,
            )
        if self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            if self._depth >= MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                "a key must be a plain value (text or a number), not a list or a mapping",
                key_node.start_mark,
            )
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found the key {key!r} twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_yaml(text: str, source: str) -> object:
    """The document in `text`; a syntax error names the file, line and column (1-based)."""
    if len(text) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"{source}: the file is {len(text):,} characters long; "
            f"a configuration file may have at most {MAX_FILE_BYTES:,}"
        )
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise InvalidInput(f"{where}: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: {exc}") from None
    except RecursionError:  # a bound above is missing; still one line, not a traceback
        raise InvalidInput(f"{source}: nested too deeply") from None


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Template bodies are multi-line: write them as literal blocks people can read and diff.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(document: dict[str, Any]) -> str:
    """YAML in the file's field order; amounts are strings, so they come out quoted."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
