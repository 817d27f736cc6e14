"""File metadata: what a capture holds outside its frames (pcapng options, a pcap header's free
fields) is searched too, and findings there point at file offsets."""

from __future__ import annotations

import struct
from pathlib import Path

from anontrace.leakage.metadata import file_metadata
from anontrace.leakage.residual import scan
from tests.helpers import write_pcap
from tests.leakage.residual_traces import HOST_NAME, IP_A, IP_B, MAC_A, collector_of, fresh, original_packets


def option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def block(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def test_pcapng_comments_and_interface_options_are_scanned(tmp_path: Path) -> None:
    """A pcapng written by hand: an interface named and described with original identifiers,
    and a frame (clean itself) whose comment names a host."""
    description = b"uplink to " + IP_B.encode()
    mac = bytes.fromhex(MAC_A.replace(":", ""))
    comment = b"seen from " + HOST_NAME.encode()
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb_options = option(2, b"eth0") + option(3, description) + option(6, mac) + option(0, b"")
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + idb_options)
    frame = bytes(fresh(b"nothing"))
    data = frame + b"\0" * (-len(frame) % 4)
    epb = block(6, struct.pack("<IIIII", 0, 0, 1000, len(frame), len(frame)) + data
                + option(1, comment) + option(0, b""))
    path = tmp_path / "metadata.pcapng"
    path.write_bytes(shb + idb + epb)
    idb_values = len(shb) + 8 + 8  # the IDB's header and fixed fields
    description_at = idb_values + len(option(2, b"eth0")) + 4
    mac_at = description_at - 4 + len(option(3, description)) + 4
    comment_at = len(shb) + len(idb) + 8 + 20 + len(data) + 4

    residual = scan(str(path), collector_of(original_packets()))

    found = [(f["kind"], f["value"], f["encoding"], f["frame"], f["offset"]) for f in residual["findings"]]
    assert found == [
        ("ipv4", IP_B, "metadata", None, description_at + description.find(IP_B.encode())),
        ("mac", MAC_A, "metadata", None, mac_at),
        ("name", HOST_NAME, "metadata", None, comment_at + comment.find(HOST_NAME.encode())),
    ]
    assert residual["by_encoding"]["metadata"] == 3 and residual["total"] == 3


def test_file_metadata_is_what_lies_outside_frames(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "plain.pcap", [fresh(IP_A.encode())])
    assert list(file_metadata(str(path))) == [(8, bytes(8))]  # a pcap header's time zone and accuracy
