"""multipart/form-data bodies (OpenAI's file upload), read with the standard library's MIME parser."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    data: bytes


def parse(content_type: str, body: bytes) -> dict[str, Part]:
    """The form's parts by field name. Raises ValueError when the body is not multipart/form-data."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise ValueError("content-type must be multipart/form-data with a boundary")
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise ValueError("the body is not a multipart form")
    out: dict[str, Part] = {}
    for part in msg.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename()
        data = part.get_payload(decode=True)
        out[name] = Part(name, filename, data if isinstance(data, bytes) else b"")
    return out


def form(fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str) -> bytes:
    """Encode a multipart/form-data body (the gateway's upload to the provider)."""
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        chunks.append(head.encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)
