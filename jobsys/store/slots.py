"""Job ids steered into a hash slot, so that ``job:<id>`` lives beside its queue.

Under Redis Cluster every key one script touches must hash to one slot. A job's
hash keeps its contract name ``job:<id>`` in every mode; in cluster mode its id is
chosen so that ``job:<id>`` hashes to the slot of its queue's ``{queue}`` tag.

The slot of a key is CRC16-XMODEM(key) mod 16384. With a zero initial value CRC16
is linear over GF(2) for messages of one length: changing the last five hex digits
of the id XORs a fixed value, which depends only on those digits, onto the slot. A
table of the XORs of the last four digits (65,536 entries, built once per process)
and a loop over the fifth find digits that move a random id into any slot. The
id stays a valid, canonical UUID4 with 102 random bits (the other 20 are chosen).
"""

from __future__ import annotations

import os
from binascii import crc_hqx
from functools import cache, lru_cache

from redis.crc import key_slot

from jobsys.store import keys

#: Slots of Redis Cluster.
SLOTS = 16384
_HEX = "0123456789abcdef"
_VARIANT = "89ab"
#: The id's 5 last digits are "00000" before they are chosen: the base.
_BASE_TAIL = "00000"


def _delta(position: int, digit: str) -> int:
    """The XOR on the slot of putting `digit` instead of "0" at `position` (0..4)
    of the last five characters of a key."""
    message = bytearray(5)
    message[position] = ord(digit) ^ ord("0")
    return crc_hqx(bytes(message), 0) & (SLOTS - 1)


@cache
def _tables() -> tuple[dict[int, str], tuple[tuple[str, int], ...]]:
    """{slot XOR: the last four digits that make it}, and (digit, its XOR) for the
    fifth digit from the end."""
    per = [[_delta(p, d) for d in _HEX] for p in range(5)]
    tail: dict[int, str] = {}
    for a in range(16):
        da = per[1][a]
        for b in range(16):
            db = da ^ per[2][b]
            for c in range(16):
                dc = db ^ per[3][c]
                for d in range(16):
                    tail.setdefault(dc ^ per[4][d], _HEX[a] + _HEX[b] + _HEX[c] + _HEX[d])
    fifth = tuple((_HEX[i], per[0][i]) for i in range(16))
    return tail, fifth


def steered_ids(slot: int, count: int) -> list[str]:
    """`count` new job ids (UUID4s in canonical text) whose key ``job:<id>`` hashes
    to `slot`."""
    tail, fifth = _tables()
    h = os.urandom(16 * count).hex()
    out = []
    for o in range(0, 32 * count, 32):
        text = (
            f"{h[o : o + 8]}-{h[o + 8 : o + 12]}-4{h[o + 13 : o + 16]}-"
            f"{_VARIANT[int(h[o + 16], 16) & 3]}{h[o + 17 : o + 20]}-{h[o + 20 : o + 27]}"
        )
        want = key_slot((keys.JOB_PREFIX + text + _BASE_TAIL).encode()) ^ slot
        start = int(h[o + 27], 16)  # which fifth digit is tried first: random
        for i in range(16):
            digit, delta = fifth[(start + i) % 16]
            four = tail.get(want ^ delta)
            if four is not None:
                out.append(text + digit + four)
                break
        else:  # pragma: no cover - five digits reach every slot (tests/unit/test_slots.py)
            raise RuntimeError(f"no job id reaches slot {slot}")
    return out


@lru_cache(maxsize=1024)
def queue_slot(queue: str) -> int:
    """The hash slot of `queue`'s keys (its ``{queue}`` tag)."""
    return key_slot(keys.ready(queue).encode())


def job_slot(job_id: str) -> int:
    """The hash slot of job `job_id`'s hash (``job:<id>``; a steered id puts it in its
    queue's slot)."""
    return key_slot(keys.job(job_id).encode())
