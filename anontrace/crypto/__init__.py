"""Prefix-preserving address encryption (Crypto-PAn) and the address-mapping policy around it."""
