"""Compatibility with multicast_expert 1.2.0 and 1.6.0 at the edge: old positional forms, sentinels,
re-exported names and the dual-base exception aliases. The core takes keyword arguments only."""
