"""What the gateway and the head-end agree on, without I/O (like h11): the uplink envelope and the
response map (``envelope``), the gateway configuration and its merge rules (``config``), serials,
link modes, MQTT topics and CoAP paths (``topics``). Imports only the standard library, cbor2,
orjson, pydantic and croniter — never the gateway or the head-end."""
