"""Meter keys of a tenant: import a CSV key file, export the key file of given meters (audited).
The keys themselves are kept encrypted by the key store (store/keystore.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid, NotFound
from omshub.cloud.store.keystore import KeyStore, KeyStoreError, parse_key_csv, parse_meter_list


def import_keys(db, keystore: KeyStore, tenant_id: int, text: str, *, actor: str, source: str) -> dict:
    """Import the key file `text` (CSV `id,key[,manufacturer]`) in a transaction of its own;
    replaces keys of the same meters, re-queues telegrams that waited for them."""
    try:
        entries = parse_key_csv(text)
    except KeyStoreError as exc:
        raise Invalid(str(exc), code="invalid_key_file") from None
    with db.transaction() as session:
        return keystore.import_keys(session, tenant_id, entries, actor=actor, source=source)


def export_keys(
    session: Session, keystore: KeyStore, tenant_id: int, meters: list[str], *, actor: str, source: str
) -> str:
    """The key file (CSV) of the given meters (`ID` or `MAN:ID`); audited."""
    try:
        wanted = parse_meter_list(meters)
    except KeyStoreError as exc:
        raise Invalid(str(exc), code="invalid_meters") from None
    try:
        return keystore.export_keys(session, tenant_id, wanted, actor=actor, source=source)
    except LookupError as exc:
        raise NotFound(str(exc), german="Zu einigen der Zähler gibt es keinen Schlüssel.") from None
