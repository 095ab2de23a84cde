"""EUI-64 addresses as the LSP sends them and as device labels print them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = re.compile(r"^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){7}$")


@dataclass(frozen=True, slots=True, order=True)
class Eui64:
    """Eight bytes, most significant first, in label order (spec section 2)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 8:
            raise ValueError(f"an EUI-64 is 8 bytes, got {len(self.raw)}")

    @classmethod
    def parse(cls, text: str) -> Eui64:
        """Parse the label form ``00-DB-12-34-56-78-90-A0``."""
        if not _LABEL.match(text):
            raise ValueError(
                f"{text!r} is not an EUI-64 in label form (eight hex pairs joined by '-', "
                "e.g. 00-DB-12-34-56-78-90-A0)"
            )
        return cls(bytes.fromhex(text.replace("-", "")))

    def __str__(self) -> str:
        return "-".join(f"{b:02X}" for b in self.raw)

    def __repr__(self) -> str:
        return f"Eui64('{self}')"
