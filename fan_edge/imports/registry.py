"""The import registry: the only place a checkpoint source (`fan-edge import --from`) is named.

A source file registers `convert(state, filename) -> Converted` with `@register_source`: it
maps the source's tensor names to fan-edge's by explicit rules (never by fuzzy matching),
refuses keys it has no rule for and architectures fan-edge does not have, and says which
model the weights are. A new source is one file and one import in `__init__.py`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

SOURCES: dict[str, "Source"] = {}


@dataclass(frozen=True)
class Converted:
    """What a source's converter returns: fan-edge tensor names -> tensors, and the model."""

    state: dict  # name -> torch.Tensor
    arch: str  # a fan-edge backbone preset: "r50" or "r18"
    width: float
    stem: str
    num_classes: int
    frames: tuple[int, ...]  # several: a FAN (one branch each); one: a standard model
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    name: str
    convert: Callable[[dict, str], Converted]
    description: str


def register_source(name: str, *, description: str) -> Callable:
    def register(convert: Callable) -> Callable:
        if name in SOURCES:
            raise ValueError(f"import source {name!r} is registered already")
        SOURCES[name] = Source(name, convert, description)
        return convert

    return register
