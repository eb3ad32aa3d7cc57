"""Counting SMS segments (GSM 03.38 / 3GPP TS 23.038): what a message costs before it is sent.

A text made only of GSM-7 characters is sent in the 7-bit alphabet: 160 characters fit in one
message; a longer text is split in parts of 153 (the concatenation header takes 7). Characters
of the extension table (`^ { } \\ [ ~ ] | €` and form feed) are an escape plus a character, so
they count 2, and a part never splits the pair. Any other character switches the whole message
to UCS-2: 70 UTF-16 code units in one message, 67 per part; a character outside the Basic
Multilingual Plane (an emoji) takes 2 code units, and a part never splits the surrogate pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class SmsEncoding(StrEnum):
    gsm7 = "GSM-7"
    ucs2 = "UCS-2"


@dataclass(frozen=True)
class SmsSegments:
    encoding: SmsEncoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    @property
    def per_segment(self) -> int:
        if self.encoding is SmsEncoding.gsm7:
            return GSM7_SINGLE if self.segments <= 1 else GSM7_PART
        return UCS2_SINGLE if self.segments <= 1 else UCS2_PART


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def _pack(costs: list[int], single: int, part: int) -> int:
    """Parts needed for characters of the given unit costs (an empty text is one message)."""
    if sum(costs) <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part:
            parts += 1
            used = 0
        used += cost
    return parts


def count_segments(text: str) -> SmsSegments:
    """The encoding, length in units and number of segments of an SMS text."""
    if is_gsm7(text):
        costs = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        return SmsSegments(SmsEncoding.gsm7, sum(costs), _pack(costs, GSM7_SINGLE, GSM7_PART))
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsSegments(SmsEncoding.ucs2, sum(costs), _pack(costs, UCS2_SINGLE, UCS2_PART))


__all__ = ["SmsEncoding", "SmsSegments", "count_segments", "is_gsm7"]
