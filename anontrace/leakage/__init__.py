"""The leakage report: what of the original could still identify hosts in an anonymized trace."""
