"""Foreign YAML read as plain data: no aliases (a 340-byte file cannot become megabytes), no dates, no binary.

PyYAML's safe loader still expands aliases and builds ``datetime`` and
``bytes`` values, which no LUT holds and no database column or JSON answer
takes; :func:`load_yaml` refuses them with a ``yaml.YAMLError`` naming the
place in the file.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["load_yaml"]


class _PlainLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` without aliases, timestamps, binary, sets or ordered maps."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def _refuse(_loader: Any, node: Any) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"{node.tag} values are not allowed", node.start_mark)


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _PlainLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


def load_yaml(text: str) -> Any:
    """A YAML (or JSON) document as plain data; ``yaml.YAMLError`` for what :class:`_PlainLoader` refuses."""
    return yaml.load(text, Loader=_PlainLoader)
