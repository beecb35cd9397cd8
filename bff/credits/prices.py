"""Tripo's prices, in credits (1 credit = 1 Tripo credit = $0.01): the published table by
default (providers.md, "Prices"), each number replaceable by ``BFF_TRIPO_PRICES`` so a
deployment can follow the console when Tripo changes it. Imports nothing of the BFF: the
settings parse it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class TripoPrices:
    """``*_untextured`` / ``*_textured``: a generation with ``texture`` off / on (standard
    texture quality); ``p1_*``: with a P1 (low-poly) model version."""

    text_untextured: int = 10
    text_textured: int = 20
    image_untextured: int = 20
    image_textured: int = 30
    multiview_untextured: int = 20
    multiview_textured: int = 30
    p1_text_untextured: int = 30
    p1_text_textured: int = 40
    p1_image_untextured: int = 40
    p1_image_textured: int = 50
    p1_multiview_untextured: int = 40
    p1_multiview_textured: int = 50
    detailed_texture: int = 20  # added to a textured generation at texture_quality "detailed"
    extreme_texture: int = 30  # ... at "extreme"
    refine: int = 20  # a re-texture at detailed quality: not published, assumed
    convert: int = 10  # a format conversion: not published, assumed

    @classmethod
    def parse(cls, text: str) -> TripoPrices:
        """The table with the prices ``refine=25,convert=12`` names replaced; an unknown
        name or anything but a whole number of at least 0 is a ValueError."""
        known = {field.name for field in fields(cls)}
        overrides = credit_pairs(text)
        for name in overrides.keys() - known:
            raise ValueError(f"names an unknown price {name!r} (known: {', '.join(sorted(known))})")
        return replace(cls(), **overrides)


def credit_pairs(text: str) -> dict[str, int]:
    """``name=credits`` pairs, comma-separated (``pro=2000,team=10000``): a name without a
    whole number of credits of at least 0 is a ValueError."""
    pairs: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = (piece.strip() for piece in item.partition("="))
        if not name or not value.isdigit():
            raise ValueError("must be name=credits pairs, comma-separated, each a whole number of at least 0")
        pairs[name] = int(value)
    return pairs
