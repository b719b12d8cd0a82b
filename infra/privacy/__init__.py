"""Personal data protection: per-record keys, field encryption, erasure, export."""
