"""Run examples/chat.py on several 'hosts' made of private network namespaces.

Needs Linux and root (or unprivileged user namespaces). Nothing touches this machine's network:
the script moves into a new namespace, bridges N peer namespaces together, runs one chat
instance in each, and checks that each heard the shared group and its neighbour's group.

Usage: python examples/run_chat_in_namespaces.py [N]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from multicast_expert import testing

CHAT = Path(__file__).with_name("chat.py")


def main(count: int) -> int:
    testing.enter_private_netns([str(Path(__file__).resolve()), str(count)])
    with testing.bridged_peers(count) as hosts:
        procs = [
            subprocess.Popen(
                h.command(
                    sys.executable, str(CHAT), "--iface", h.peer_if, "--index", str(i), "--count", str(count)
                ),
                stdout=subprocess.PIPE,
                text=True,
            )
            for i, h in enumerate(hosts)
        ]
        outputs = [p.communicate(timeout=30)[0] for p in procs]
    ok = True
    for i, (host, text) in enumerate(zip(hosts, outputs, strict=True)):
        follows = (i + 1) % count
        heard_shared = any(f"instance-{j} says hi to all" in text for j in range(count) if j != i)
        heard_neighbour = f"instance-{follows} says hi to its follower" in text
        strangers = [
            j for j in range(count) if j != follows and f"instance-{j} says hi to its follower" in text
        ]
        if strangers:
            print(f"host {i} heard the private group of instances {strangers}, which it never joined")
            ok = False
        print(
            f"host {i} ({host.peer_ip4}): shared group {'OK' if heard_shared else 'MISSING'}, "
            f"neighbour {follows}'s group {'OK' if heard_neighbour else 'MISSING'}"
        )
        ok = ok and heard_shared and heard_neighbour
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
