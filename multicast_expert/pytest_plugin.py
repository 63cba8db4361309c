"""A pytest plugin (loaded automatically when multicast_expert is installed): the ``mcast_network``
fixture, a private test network per test (see :func:`multicast_expert.testing.private_network`).

Use it in any test that sends or receives multicast, so the test never touches a real network::

    def test_my_receiver(mcast_network):
        peer = mcast_network.default_peer
        ...  # open sockets here; peer.run(fn) runs fn inside the peer

The test is skipped, with the reason, where private namespaces can't be made (not Linux, not root);
set ``MULTICAST_EXPERT_REQUIRE_NETNS=1`` (as CI should) to fail instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from . import testing


@pytest.fixture
def mcast_network() -> Iterator[testing.Network]:
    """A private network with one peer holding the default routes, for the duration of one test."""
    try:
        cm = testing.private_network(peers=1)
        network = cm.__enter__()
    except (testing.NetnsError, OSError) as exc:
        required = os.environ.get("MULTICAST_EXPERT_REQUIRE_NETNS", "").strip().lower()
        if required not in ("", "0", "false", "no"):
            pytest.fail(f"mcast_network: no private network namespace: {exc}")
        pytest.skip(f"mcast_network: no private network namespace: {exc}")
    try:
        yield network
    finally:
        cm.__exit__(None, None, None)
