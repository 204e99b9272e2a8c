"""What binary attachments say about their own size, read from their first bytes (no image library).

- `image_size`: (width, height) from a PNG, GIF, WebP or JPEG header, or None.
- `pdf_pages`: the pages of a PDF, counted from its objects (compressed object streams included),
  or None when they cannot be counted within the work allowed; `pdf_text_bytes` bounds its text.
- `audio_seconds`: the length of a WAV from its header, else an upper bound from its byte size.

Each reads a bounded prefix of the data (base64 is decoded only as far as needed), so a huge or
hostile attachment costs little CPU; anything unreadable is None, and the caller then uses the
provider's documented maximum.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib

HEAD = 64 * 1024  # bytes of an image decoded to find its size (JPEG's SOF can follow EXIF and ICC data)
PDF_SCAN = 8 * 1024 * 1024  # bytes of a PDF scanned for page objects
PDF_INFLATE = 16 * 1024 * 1024  # bytes of compressed object streams inflated, in all


def b64_prefix(data: str, size: int) -> bytes:
    """The first `size` decoded bytes of base64 text (fewer when the text is short or malformed)."""
    chunk = data[: (size // 3 + 1) * 4]
    chunk = chunk[: len(chunk) - len(chunk) % 4]
    try:
        return base64.b64decode(chunk)
    except (binascii.Error, ValueError):
        return b""


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of an image from its first bytes, for PNG, GIF, WebP and JPEG."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24 and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return (w, h) if w and h else None
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return (w, h) if w and h else None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        kind = head[12:16]
        if kind == b"VP8X":
            w = 1 + int.from_bytes(head[24:27], "little")
            h = 1 + int.from_bytes(head[27:30], "little")
            return w, h
        if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
            w, h = struct.unpack("<HH", head[26:30])
            return (w & 0x3FFF, h & 0x3FFF) if w & 0x3FFF and h & 0x3FFF else None
        if kind == b"VP8L" and head[20:21] == b"\x2f" and len(head) >= 25:
            bits = int.from_bytes(head[21:25], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        return None
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    return None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", b[i + 2 : i + 4])[0]
        if marker in _SOF:
            h, w = struct.unpack(">HH", b[i + 5 : i + 9])
            return (w, h) if w and h else None
        i += 2 + length
    return None


_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")
_OBJSTM = re.compile(rb"/Type\s*/ObjStm")
_STREAM = re.compile(rb"stream\r?\n")
_STREAM_BODY = re.compile(rb"stream\r?\n(.*?)endstream", re.DOTALL)


def pdf_pages(pdf: bytes) -> int | None:
    """Pages of a PDF: the larger of its page objects and its page tree's /Count, looking inside
    compressed object streams too. None when the file is not a PDF, is too large to scan, or hides
    its objects in a way this does not read (then the provider's page limit bounds it)."""
    if not pdf.startswith(b"%PDF-") or len(pdf) > PDF_SCAN:
        return None
    texts = [pdf]
    if _OBJSTM.search(pdf):
        budget = PDF_INFLATE
        for m in _STREAM.finditer(pdf):
            d = zlib.decompressobj()
            try:
                out = d.decompress(pdf[m.end() : m.end() + budget], budget)
            except zlib.error:
                continue
            budget -= len(out)
            texts.append(out)
            if budget <= 0:
                return None
    pages = 0
    for t in texts:
        pages += len(_PAGE.findall(t))
        for a, b in _COUNT.findall(t):
            pages = max(pages, int(a or b))
    return pages or None


_BOX = re.compile(rb"/(?:MediaBox|CropBox)\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]")


def pdf_page_shapes(pdf: bytes) -> list[tuple[float, float]] | None:
    """The (width, height) of every MediaBox and CropBox in an uncompressed PDF, in points: the
    shapes its pages can be rendered in. None when there is none or objects may be compressed."""
    if not pdf.startswith(b"%PDF-") or _OBJSTM.search(pdf):
        return None
    shapes = []
    for m in _BOX.finditer(pdf):
        try:
            x0, y0, x1, y1 = (float(v) for v in m.groups())
        except ValueError:
            return None
        w, h = abs(x1 - x0), abs(y1 - y0)
        if w < 1 or h < 1:
            return None
        shapes.append((w, h))
    return shapes or None


# A string operand in a content stream: a literal `( … )` (escapes and balanced parentheses inside)
# or a hex string `< … >` (not a `<<` dictionary).
_LITERAL_OR_HEX = re.compile(rb"\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\)|<(?!<)[0-9A-Fa-f\s]*>", re.DOTALL)


def pdf_text_bytes(pdf: bytes) -> int | None:
    """An upper bound on the characters of text a PDF can yield when none of its streams is
    compressed. A page's text is drawn only by the string operands of its content streams' text
    operators (PDF 32000-1, 9.4.3), one character per byte at most for the simple fonts an
    uncompressed file can carry without a font program, and an extractor adds at most one separator
    per string: so the strings' bytes plus their count. A stream without any string draws no text.
    With compressed streams (or a parenthesis this does not follow) there is no such bound (None)."""
    if not pdf.startswith(b"%PDF-") or b"/Filter" in pdf:
        return None
    if b"/ToUnicode" in pdf or b"/Type0" in pdf:  # a code may map to several characters: no byte bound
        return None
    total = 0
    for m in _STREAM_BODY.finditer(pdf):
        body = m.group(1)
        strings = _LITERAL_OR_HEX.findall(body)
        if body.count(b"(") - body.count(b"\\(") > sum(s.count(b"(") for s in strings):
            return len(pdf)  # a string this scan cannot delimit: the whole file bounds it
        total += sum(len(s) for s in strings) + len(strings)
    return total


_ESCAPES = {ord("n"): "\n", ord("r"): "\r", ord("t"): "\t", ord("b"): "\b", ord("f"): "\f"}


def pdf_strings(pdf: bytes) -> list[str] | None:
    """The text strings a PDF's content streams draw, decoded (escapes, octal codes, hex strings),
    one character per byte: what an extractor can read from it, for a tokenizer to count. None where
    `pdf_text_bytes` gives no bound (compressed streams, fonts whose codes map to several characters)."""
    if pdf_text_bytes(pdf) in (None, len(pdf)):
        return None
    out = []
    for m in _STREAM_BODY.finditer(pdf):
        for raw in _LITERAL_OR_HEX.findall(m.group(1)):
            out.append(_hex(raw) if raw[:1] == b"<" else _literal(raw[1:-1]))
    return out


def _hex(raw: bytes) -> str:
    digits = bytes(c for c in raw[1:-1] if c not in b" \t\r\n\f")
    if len(digits) % 2:
        digits += b"0"
    return bytes.fromhex(digits.decode()).decode("latin-1")


def _literal(raw: bytes) -> str:
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C or i + 1 == len(raw):  # not a backslash
            out.append(chr(c))
            i += 1
            continue
        n = raw[i + 1]
        if 0x30 <= n <= 0x37:  # up to three octal digits
            j = i + 1
            while j < len(raw) and j < i + 4 and 0x30 <= raw[j] <= 0x37:
                j += 1
            out.append(chr(int(raw[i + 1 : j], 8) & 0xFF))
            i = j
        elif n in (0x0A, 0x0D):  # a line continuation
            i += 3 if raw[i + 1 : i + 3] == b"\r\n" else 2
        else:
            out.append(_ESCAPES.get(n, chr(n)))
            i += 2
    return "".join(out)


def audio_seconds(audio: bytes, size: int) -> float:
    """Seconds of audio: from a WAV header when there is one, else what `size` bytes can hold at
    8 kbit/s, the lowest MP3 bit rate (an upper bound for the compressed formats)."""
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) >= 44:
        i = 12
        while i + 8 <= len(audio):
            kind, length = audio[i : i + 4], struct.unpack("<I", audio[i + 4 : i + 8])[0]
            if kind == b"fmt " and i + 24 <= len(audio):
                fmt, channels, sample_rate, byte_rate, block_align, bits = struct.unpack(
                    "<HHIIHH", audio[i + 8 : i + 24]
                )
                # byte_rate repeats sample_rate × block_align; a decoder times the samples, so a header
                # whose byte_rate claims more than its samples hold must not shorten the bound
                if fmt in (1, 3):  # PCM, IEEE float: the sample layout gives the rate too; the lowest reading
                    rates = (byte_rate, sample_rate * block_align, sample_rate * channels * ((bits + 7) // 8))
                    byte_rate = min((r for r in rates if r), default=0)
                else:  # compressed in a WAV container: no more bytes a second than the compressed bound
                    byte_rate = min(byte_rate or 1000, 1000)
                if byte_rate:
                    return size / byte_rate
                break
            i += 8 + length + (length & 1)
    return size * 8 / 8000
