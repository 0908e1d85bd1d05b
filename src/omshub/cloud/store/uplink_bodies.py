"""Uplink bodies without a second copy of their telegrams.

An uplink body is kept as evidence, and so is every telegram in it (`telegrams.raw`, kept longer).
Where a body carries its frames as raw bytes one after the other (the CBOR batch's `data`), those
bytes are cut out of the stored body and the telegram rows hold them: `frames_cut_at` is the offset
they were cut at, `frames_after_id` an id below all of the uplink's telegrams (which were inserted
in the frames' order). `full_body` gives back the body byte for byte as it was stored before
(the credential redacted, store/retention.py's emptied body as b"").

Only an uplink whose every frame became a telegram row of its own is cut (one with rejected
entries, or with a frame already stored, keeps its whole body); retention deletes no telegram of an
uplink whose cut body is still kept.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.store.models import Telegram, Uplink


def frames_cut(body: bytes, frames: list[bytes]) -> tuple[int, bytes] | None:
    """(offset, body without the frames) when the frames stand in `body` one after the other as
    raw bytes, else None (e.g. a JSON body carries them as text)."""
    joined = b"".join(frames)
    if not joined:
        return None
    at = body.find(joined)
    if at < 0:
        return None
    return at, body[:at] + body[at + len(joined) :]


def full_body(session: Session, uplink: Uplink) -> bytes:
    """The uplink's body as received (credential redacted), its frames put back from the telegrams."""
    body = bytes(uplink.body)
    if uplink.frames_cut_at is None or uplink.body_dropped_at is not None:
        return body
    frames = session.scalars(
        select(Telegram.raw)
        .where(
            Telegram.uplink_id == uplink.id,
            Telegram.tenant_id == uplink.tenant_id,
            Telegram.id > (uplink.frames_after_id or 0),
        )
        .order_by(Telegram.id)
        .limit(uplink.telegram_count)
    ).all()
    at = uplink.frames_cut_at
    return body[:at] + b"".join(bytes(f) for f in frames) + body[at:]
