"""Pure rules of the head-end: no database, no HTTP (register arithmetic, alarm rules, meter-time
conversion, operation states, secret hashing). Every layer above may use them."""
