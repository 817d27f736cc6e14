"""Sanity limits applied to every record a reader accepts."""

MAX_RECORD = 256 * 1024 * 1024  # a record or block claiming more than this is damage, not data
# Records longer than the file's snaplen are read (as libpcap and Wireshark do) up to this size,
# the largest packet capture tools write; beyond it they are taken as damage.
MAX_PACKET = 262144
