"""vutf: administration command line for the ViolentUTF identity and audit store."""

__version__ = "0.1.0"
