"""Reading and writing captures: pcap, pcapng, compression, stdin/stdout, atomic outputs."""
