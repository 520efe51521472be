"""A read-only, case-insensitive view of HTTP headers, with no HTTP library underneath.

Used where headers are kept beyond the response they came with (errors,
recorded requests), so ``error.headers.get("retry-after")`` finds
``Retry-After`` without importing ``requests`` into modules that must not.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Tuple, Union

__all__ = ["Headers"]


class Headers(Mapping[str, str]):
    """Read-only header mapping with case-insensitive lookup; iteration gives the names as sent."""

    __slots__ = ("_items",)

    def __init__(self, items: Union[Mapping[str, str], Iterable[Tuple[str, str]]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items = {name.lower(): (name, value) for name, value in pairs}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return {k.lower(): v for k, v in self.items()} == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"

    def __reduce__(self) -> Tuple[type, Tuple[list[Tuple[str, str]]]]:
        return (type(self), ([pair for pair in self._items.values()],))
