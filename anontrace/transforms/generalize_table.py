"""generalize over a batch's table: the same rewrites as `Generalize` frame by frame, as columns.

A table row (see `packet.table`) is an IPv4 header without options or an IPv6 header without
extension headers, then a whole TCP, UDP or ICMP header, so every field sits at a per-row offset
and each rewrite is a gather, a lookup and a scatter. Keyed values (permuted ids and ports, flow
labels, sequence offsets, TCP clocks) are computed once per distinct input through the
transform's own tables and PRFs, so they equal the frame-by-frame ones by construction. TCP
options are walked for all rows at once, one option per step, exactly as `generalize._walk`
walks them; the differential tests compare both paths byte for byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from anontrace.packet.table import COLUMNS, TCP, UDP, WIDTH, Bytes, Ints, Table, big_endian
from anontrace.transforms.generalize import ACK_FLAG, EOL, NOP, PORT_RANGES, SACK, TIMESTAMPS

if TYPE_CHECKING:
    from anontrace.transforms.generalize import Generalize

_LASTS = np.array([last for _, last in PORT_RANGES], np.int64)


def generalize_table(transform: Generalize, table: Table) -> Counter[str]:
    """Rewrite the table's rows as `transform` rewrites frames; what it did, counted."""
    counts: Counter[str] = Counter()
    if not len(table):
        return counts
    counts["IP headers generalized"] += len(table)
    ipv4 = np.flatnonzero(table.is4)
    ipv6 = np.flatnonzero(~table.is4)
    _ipv4(transform, table, ipv4)
    _ipv6(transform, table, ipv6)
    carried = np.flatnonzero((table.protocol == TCP) | (table.protocol == UDP))
    if len(carried):
        counts["TCP/UDP headers generalized"] += len(carried)
    _ports(transform, table, carried)
    tcp = np.flatnonzero(table.protocol == TCP)
    if len(tcp):
        _tcp(transform, table, tcp, counts)
    return counts


def _ipv4(transform: Generalize, table: Table, rows: Ints) -> None:
    config, at = transform.config, table.network[rows]
    if config.tos != "keep":
        tos = table.number(rows, at + 1, 1) & 0x03 if config.tos == "ecn" else np.zeros(len(rows), np.int64)
        table.put_number(rows, at + 1, 1, tos)
    if config.ip_id == "zero":
        table.put_number(rows, at + 4, 2, np.zeros(len(rows), np.int64))
    elif config.ip_id == "permute":
        ids = table.number(rows, at + 4, 2)
        table.put_number(rows, at + 4, 2, transform.ip_ids.full()[ids])
    table.put_number(rows, at + 8, 1, _ttl(transform)[table.number(rows, at + 8, 1)])


def _ipv6(transform: Generalize, table: Table, rows: Ints) -> None:
    config, at = transform.config, table.network[rows]
    word = table.number(rows, at, 4)
    traffic_class, label = (word >> 20) & 0xFF, word & 0xFFFFF
    if config.tos != "keep":
        traffic_class &= 0x03 if config.tos == "ecn" else 0
    if config.flow_label == "zero":
        label = np.zeros(len(rows), np.int64)
    elif config.flow_label == "keyed":
        labelled = np.flatnonzero(label != 0)
        message = np.concatenate([table.read(rows[labelled], at[labelled] + 8, 16),
                                  big_endian(label[labelled], 3)], axis=1)
        keyed = _per_distinct(transform.flow_labels, message)
        label[labelled] = np.where(keyed == 0, 1, keyed)
    table.put_number(rows, at, 4, (word & 0xF0000000) | (traffic_class << 20) | label)
    table.put_number(rows, at + 7, 1, _ttl(transform)[table.number(rows, at + 7, 1)])


def _ports(transform: Generalize, table: Table, rows: Ints) -> None:
    config = transform.config
    if config.ports == "keep":
        return
    kept = np.array(sorted(transform.kept_ports), np.int64)
    for field in (table.transport[rows], table.transport[rows] + 2):
        port = table.number(rows, field, 2)
        index = np.searchsorted(_LASTS, port)
        chosen = np.flatnonzero((port >= config.well_known) & ~np.isin(port, kept))
        if config.ports == "bucket":
            firsts = np.maximum(np.array([first for first, _ in PORT_RANGES], np.int64), config.well_known)
            new = firsts[index[chosen]]
        else:
            new = transform.ports.full()[port[chosen]]
        table.put_number(rows[chosen], field[chosen], 2, new)


def _tcp(transform: Generalize, table: Table, rows: Ints, counts: Counter[str]) -> None:
    config = transform.config
    at, network, is4 = table.transport[rows], table.network[rows], table.is4[rows]
    backward = np.zeros(len(rows), np.int64)
    if config.tcp_sequence == "offset":
        for family in (True, False):
            chosen = np.flatnonzero(is4 == family)
            sender, receiver = _hosts(table, rows[chosen], network[chosen], family)
            ports = table.read(rows[chosen], at[chosen], 4)
            forward = _per_distinct(transform.sequences,
                                    np.concatenate([sender, ports[:, :2], receiver, ports[:, 2:]], axis=1))
            backward[chosen] = _per_distinct(transform.sequences,
                                             np.concatenate([receiver, ports[:, 2:], sender, ports[:, :2]],
                                                            axis=1))
            _add(table, rows[chosen], at[chosen] + 4, forward, np.ones(len(chosen), np.bool_))
            acked = (table.number(rows[chosen], at[chosen] + 13, 1) & ACK_FLAG) != 0
            _add(table, rows[chosen], at[chosen] + 8, backward[chosen], acked)
    if config.tcp_window == "bucket":
        window = table.number(rows, at + 14, 2)
        table.put_number(rows, at + 14, 2, _highest_bit(window))
    header = (table.number(rows, at + 12, 1) >> 4) * 4
    optioned = np.flatnonzero(header > 20)
    if len(optioned):
        _options(transform, table, rows[optioned], at[optioned] + 20, at[optioned] + header[optioned],
                 backward[optioned], counts)


def _options(transform: Generalize, table: Table, rows: Ints, start: Ints, end: Ints,
             backward: Ints, counts: Counter[str]) -> None:
    """Walk every row's option list as `generalize._walk` does, then apply `_tcp_options`'s
    rules to the options found: (row index, kind, start, length), kind -1 for a malformed rest."""
    found: list[tuple[Ints, Ints, Ints, Ints]] = []
    index = np.arange(len(rows))
    position = start.copy()
    active = position < end
    while active.any():
        live = np.flatnonzero(active)
        pos, stop = position[live], end[live]
        kind = table.original[rows[live], pos].astype(np.int64)
        eol = kind == EOL
        nop = kind == NOP
        other = ~eol & ~nop
        length = table.original[rows[live], np.minimum(pos + 1, WIDTH - 1)].astype(np.int64)
        malformed = other & ((pos + 1 >= stop) | (length < 2) | (pos + length > stop))
        whole = other & ~malformed
        rest = eol | malformed
        found.append((index[live[rest]], np.where(eol, EOL, -1)[rest], pos[rest], (stop - pos)[rest]))
        found.append((index[live[whole]], kind[whole], pos[whole], length[whole]))
        position[live] = np.where(nop, pos + 1, np.where(whole, pos + length, stop))
        active[live[rest]] = False
        active &= position < end
    which, kind, begin, length = (np.concatenate(parts) for parts in zip(*found, strict=True))
    _apply_options(transform, table, rows, which, kind, begin, length, backward, counts)


def _apply_options(transform: Generalize, table: Table, rows: Ints, which: Ints, kind: Ints,
                   begin: Ints, length: Ints, backward: Ints, counts: Counter[str]) -> None:
    config = transform.config
    keep, stamps = set(config.keep_tcp_options), config.tcp_timestamps
    kept = np.isin(kind, np.array(sorted(keep), np.int64))
    zeroed = (kind == EOL) & (EOL in keep)
    stamped = ~zeroed & (kind == TIMESTAMPS) & (length == 10) & (stamps != "remove")
    sacked = ~zeroed & ~stamped & (kind == SACK) & (SACK in keep)
    padded = ~zeroed & ~stamped & ~sacked & (kind != NOP) & (~kept | (kind == TIMESTAMPS))
    if padded.any():
        counts["options replaced with padding"] += int(padded.sum())
    _fill(table, rows[which[zeroed]], begin[zeroed] + 1, begin[zeroed] + length[zeroed], 0)
    _fill(table, rows[which[padded]], begin[padded], begin[padded] + length[padded], NOP)
    if stamps == "renumber" and stamped.any():
        _renumber(transform, table, rows, which[stamped], begin[stamped])
    if sacked.any() and backward.any():
        edges = (length[sacked] - 2) // 4
        owner = np.repeat(np.flatnonzero(sacked), edges)
        step = np.arange(len(owner)) - np.repeat(np.cumsum(edges) - edges, edges)
        at = begin[owner] + 2 + 4 * step
        _add(table, rows[which[owner]], at, backward[which[owner]], np.ones(len(owner), np.bool_))


def _renumber(transform: Generalize, table: Table, rows: Ints, which: Ints, begin: Ints) -> None:
    """TSval gets the sender's clock offset, TSecr the receiver's; a zero field stays zero."""
    chosen = rows[which]
    for family in (True, False):
        mine = np.flatnonzero(table.is4[chosen] == family)
        sender, receiver = _hosts(table, chosen[mine], table.network[chosen[mine]], family)
        for host, field in ((sender, begin[mine] + 2), (receiver, begin[mine] + 6)):
            clock = _per_distinct(transform.clocks, host)
            nonzero = table.number(chosen[mine], field, 4) != 0
            _add(table, chosen[mine], field, clock, nonzero)


def _hosts(table: Table, rows: Ints, network: Ints, is4: bool) -> tuple[Bytes, Bytes]:
    size, first = (4, 12) if is4 else (16, 8)
    both = table.read(rows, network + first, 2 * size)
    return both[:, :size], both[:, size:]


def _add(table: Table, rows: Ints, field: Ints, offset: Ints, where: npt.NDArray[np.bool_]) -> None:
    """`generalize._add`: add `offset` (mod 2**32) to the 32-bit number at `field` where asked."""
    chosen = np.flatnonzero(where & (offset != 0))
    if len(chosen):
        value = (table.number(rows[chosen], field[chosen], 4) + offset[chosen]) & 0xFFFFFFFF
        table.put_number(rows[chosen], field[chosen], 4, value)


def _fill(table: Table, rows: Ints, start: Ints, stop: Ints, value: int) -> None:
    """Set the output bytes [start, stop) of each row to `value`."""
    if not len(rows):
        return
    inside = (start[:, None] <= COLUMNS) & (stop[:, None] > COLUMNS)
    row, column = np.nonzero(inside)
    table.out[rows[row], column] = value


def _per_distinct(function: Callable[[bytes], int], messages: Bytes) -> Ints:
    """`function` of each row of `messages` (bytes), computed once per distinct row."""
    if not len(messages):
        return np.zeros(0, np.int64)
    width = messages.shape[1]
    unique, inverse = np.unique(np.ascontiguousarray(messages).view(f"V{width}").ravel(),
                                return_inverse=True)
    values = np.array([function(value.tobytes()) for value in unique], np.int64)
    found: Ints = values[inverse.ravel()]
    return found


def _ttl(transform: Generalize) -> Ints:
    return np.frombuffer(transform.ttl_table, np.uint8).astype(np.int64)


def _highest_bit(values: Ints) -> Ints:
    """The highest power of two not above each value (0 for 0), as `1 << bit_length >> 1`."""
    spread = values.copy()
    for shift in (1, 2, 4, 8, 16):
        spread |= spread >> shift
    found: Ints = spread - (spread >> 1)
    return found
