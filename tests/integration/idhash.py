"""sy_id_hash (src/store/idmap.c, pinned in tests/unit/test_idmap.c) for rows written straight
into a SQLite store: tests and benchmarks that fill a store beside the server give each event
its hash, as the server would (or the server computes the missing ones at its next start)."""


def id_hash(event_id):
    """The id's hash as the store keeps it in events.idh: a signed 64-bit integer."""
    mask = (1 << 64) - 1
    h = 1469598103934665603
    for b in event_id.encode():
        h = ((h ^ b) * 1099511628211) & mask
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & mask
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & mask
    h ^= h >> 33
    return h - (1 << 64) if h >> 63 else h
