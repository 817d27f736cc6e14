"""metadata: the bytes of a capture file that are neither frame data nor block structure.

A capture leaks through more than its frames: pcapng comments, interface descriptions and name
resolution blocks can spell an original address or host name that no frame carries any more.
`file_metadata` walks the file (decompressed) and yields those spans with their file offsets, so
that the residual scan searches them like frames and points at where they lie.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from anontrace.io.stream import CHUNK, open_input


def file_metadata(path: str) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of what the (decompressed) capture holds besides frame data and block
    structure: for pcapng every option value (comments, interface names and descriptions,
    `if_MACaddr`, `shb_os` ...), and the whole body of name resolution, decryption secrets,
    custom and unknown blocks; for classic pcap the header's time zone and accuracy fields (the
    rest of its header and record headers are magic, lengths and times)."""
    stream = open_input(path)
    try:
        head = stream.read(24)
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            yield from _pcapng_metadata(stream.read, head)
        elif len(head) == 24:
            yield 8, head[8:16]
    finally:
        stream.close()


PCAPNG_FIXED = {0x0A0D0D0A: 16, 1: 8, 5: 12}  # SHB, IDB, ISB: numeric fields before the options
PACKET_BLOCKS = (2, 6)  # OPB, EPB: 20 bytes of numbers, then the data, then options


def _pcapng_metadata(read: Callable[[int], bytes], head: bytes) -> Iterator[tuple[int, bytes]]:
    data, base, position, order = head, 0, 0, "<"
    while True:
        if len(data) - position < 12:
            data, base, position = data[position:] + read(CHUNK), base + position, 0
            if len(data) < 12:
                if data:
                    yield base, data
                return
        if data[position:position + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[position + 8:position + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        kind, length = struct.unpack_from(order + "II", data, position)
        if kind in PACKET_BLOCKS and 32 <= length <= len(data) - position \
                and length - 32 == (struct.unpack_from(order + "I", data, position + 20)[0] + 3) & ~3:
            position += length  # a packet block without options: nothing but numbers and data
            continue
        if len(data) - position < length:
            data, base, position = data[position:] + read(max(CHUNK, length)), base + position, 0
        if length < 12 or length % 4 or len(data) - position < length:
            yield base + position, data[position:] + read(-1)
            return
        yield from _block_metadata(kind, data, position + 8, position + length - 4, base, order)
        position += length


def _block_metadata(kind: int, data: bytes, start: int, end: int, base: int, order: str,
                    ) -> Iterator[tuple[int, bytes]]:
    if kind in PACKET_BLOCKS and end - start >= 20:
        caplen = struct.unpack_from(order + "I", data, start + 12)[0]
        options = start + 20 + (caplen + 3) // 4 * 4
    elif kind == 3:  # SPB: original length, then the data
        return
    elif kind in PCAPNG_FIXED:
        options = start + PCAPNG_FIXED[kind]
    else:
        yield base + start, data[start:end]
        return
    while options + 4 <= end:
        code, size = struct.unpack_from(order + "HH", data, options)
        if code == 0:
            options += 4
            break
        if options + 4 + size > end:
            break
        yield base + options + 4, data[options + 4:options + 4 + size]
        options += 4 + (size + 3) // 4 * 4
    if options < end:
        yield base + options, data[options:end]
