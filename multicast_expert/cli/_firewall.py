"""Reading firewall rules (nftables, iptables) for what drops multicast, IGMP or MLD. Read-only.

A rule counts when its verdict is drop/reject and it matches multicast: a multicast address
(parsed as an address, so 10.239.1.1 is not multicast), IGMP, MLD/ICMPv6, ``pkttype multicast``
or ``addrtype MULTICAST``, or nothing at all (a catch-all). A filter chain on the input path whose
*policy* is drop counts unless it has a rule accepting multicast.

A finding knows what it can hit: the multicast ranges a rule names (a rule dropping 239.0.0.0/8
does not touch 232.1.1.1), and the IP version of its table (iptables: IPv4, ip6tables: IPv6, an
nft ``ip`` / ``ip6`` table: that version). IGMP/MLD rules, catch-alls and policies hit every group.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_MCAST_NETS = (ipaddress.ip_network("224.0.0.0/4"), ipaddress.ip_network("ff00::/8"))
_KEYWORDS = re.compile(r"\bigmp\b|\bicmpv6\b|ipv6-icmp|\bmld|pkttype multicast|MULTICAST|multicast", re.I)
#: Keywords for the membership protocols themselves: a rule naming them hits every group.
_PROTOCOLS = re.compile(r"\bigmp\b|\bicmpv6\b|ipv6-icmp|\bmld", re.I)
_ADDRESS = re.compile(r"(?<![\w:.])([0-9a-fA-F]*[:.][0-9a-fA-F:.]+(?:/\d{1,3})?)(?![\w:.])")
_RANGE = re.compile(r"(?<![\w:.])([0-9a-fA-F]*[:.][0-9a-fA-F:.]+)-([0-9a-fA-F]*[:.][0-9a-fA-F:.]+)(?![\w:.])")
_DROP = re.compile(r"\b(drop|reject|DROP|REJECT)\b")
_ACCEPT = re.compile(r"\b(accept|ACCEPT)\b")


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Finding:
    """One rule or chain policy that drops multicast, and how to fix it."""

    text: str
    fix: str
    #: The multicast ranges the rule is limited to; None when it hits every group.
    nets: tuple[IPNetwork, ...] | None = None
    #: 4 or 6 when the rule's table only sees that IP version.
    version: int | None = None
    #: Destinations the rule leaves alone (``daddr != ...``, iptables ``! -d ...``).
    excluded: tuple[IPNetwork, ...] = ()
    #: A chain policy's finding: what the chain's accepting rules let through, as :func:`data_accept`
    #: gives it for each; a group one of them reaches is not dropped by the policy.
    accepted: tuple[Reach, ...] = ()

    def matches(self, group: str) -> bool:
        """Whether the rule can drop traffic of ``group``."""
        ip = ipaddress.ip_address(group)
        if self.version is not None and ip.version != self.version:
            return False
        if any(ip.version == n.version and ip in n for n in self.excluded):
            return False
        if any(_reaches(reach, ip) for reach in self.accepted):
            return False
        return self.nets is None or any(ip.version == n.version and ip in n for n in self.nets)


#: What an accepting rule lets through of multicast data: (the IP version it is limited to, or
#: None for both; the multicast ranges it is limited to, or None for every group).
Reach = tuple[int | None, tuple[IPNetwork, ...] | None]


def _reaches(reach: Reach, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    version, nets = reach
    if version is not None and ip.version != version:
        return False
    return nets is None or any(ip.version == n.version and ip in n for n in nets)


def data_accept(rule: str, version: int | None) -> Reach | None:
    """What an accepting rule (in a table of IP ``version``, None: both) lets through of multicast
    data, UDP to a group; None when it lets none through for sure: it names no multicast, or it is
    limited to the membership protocols (an ``igmp`` or ``icmpv6`` rule accepts IGMP/MLD, not the
    datagrams, unless it names UDP too), or it has a negated match of any kind (not read: the
    policy's finding stands)."""
    rule = _QUOTED.sub('""', rule)  # (a comment's words match nothing)
    if not _ACCEPT.search(rule) or _NEGATION.search(rule) or not mentions_multicast(rule):
        return None
    if _PROTOCOLS.search(rule) and not re.search(r"\budp\b", rule):
        return None
    if version is None:  # (an nft inet table: the rule's own address family, if it names one)
        if re.search(r"\bip6\b|\bnfproto ipv6\b", rule):
            version = 6
        elif re.search(r"\bip\b|\bnfproto ipv4\b", rule):
            version = 4
    return version, multicast_nets(rule)


#: A negated destination match: nft ``[ip|ip6] daddr != X`` (X one address or network, a range,
#: or a set ``{ ... }``), iptables ``! -d X`` / ``! --dst-range A-B``.
_NEGATED = re.compile(
    r"(?:\b(?:ip6?\s+)?daddr\s+!=\s+(\{[^}]*\}|\S+)|!\s+(?:-d|--destination|--dst-range)\s+(\S+))\s*"
)


#: Any negated match (nft ``!=``, iptables ``! --opt``): ``pkttype != multicast`` included.
_NEGATION = re.compile(r"!=|!\s+-")
#: Quoted text: comments (nft ``comment "..."``, iptables ``--comment "..."``).
_QUOTED = re.compile(r'"[^"]*"')


def split_negated(rule: str) -> tuple[str, tuple[IPNetwork, ...]]:
    """``rule`` without its negated destination match, and the networks that match leaves alone
    (a rule dropping every destination but those hits every other group)."""
    m = _NEGATED.search(rule)
    if m is None:
        return rule, ()
    return rule[: m.start()] + rule[m.end() :], tuple(_networks(m.group(1) or m.group(2)))


def _networks(rule: str) -> list[IPNetwork]:
    """Every address, network and address range (``A-B``: nft's ranges, iptables' ``iprange``)
    a rule names, as networks."""
    nets: list[IPNetwork] = []

    def take_range(m: re.Match[str]) -> str:
        try:
            first, last = ipaddress.ip_address(m.group(1)), ipaddress.ip_address(m.group(2))
            nets.extend(ipaddress.summarize_address_range(first, last))
        except (ValueError, TypeError):  # (not addresses, mixed versions, or last before first)
            return m.group(0)
        return " "

    for token in _ADDRESS.findall(_RANGE.sub(take_range, rule)):
        try:
            nets.append(ipaddress.ip_network(token, strict=False))
        except ValueError:
            continue
    return nets


def multicast_nets(rule: str) -> tuple[IPNetwork, ...] | None:
    """The multicast ranges a dropping rule is limited to, or None when it hits every group (it
    names IGMP/MLD, or no multicast address at all)."""
    if _PROTOCOLS.search(rule):
        return None
    nets = []
    for net in _networks(rule):
        for m in _MCAST_NETS:
            if net.version == m.version and net.overlaps(m):
                nets.append(net if net.prefixlen >= m.prefixlen else m)
    return tuple(nets) or None


def mentions_multicast(rule: str) -> bool:
    """Whether a rule's match part names multicast traffic (addresses compared as networks)."""
    if _KEYWORDS.search(rule):
        return True
    for net in _networks(rule):
        if any(net.version == m.version and net.overlaps(m) for m in _MCAST_NETS):
            return True
    return False


def _iptables_catch_all(rule: str) -> bool:
    return re.fullmatch(r"-A \S+ -j (DROP|REJECT)( .*)?", rule) is not None


def _nft_catch_all(rule: str) -> bool:
    return re.fullmatch(r"(counter( packets \d+ bytes \d+)? )?(drop|reject)( .*)?", rule) is not None


def iptables_findings(tool: str, text: str) -> list[Finding]:
    """Findings in ``iptables -S`` / ``ip6tables -S`` output."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    version = 6 if tool.startswith("ip6") else 4
    found = []
    for ln in lines:
        rule, excluded = split_negated(ln)
        if (
            ln.startswith("-A ")
            and _DROP.search(rule)
            and (mentions_multicast(rule) or _iptables_catch_all(rule))
        ):
            nets = multicast_nets(rule)
            found.append(Finding(f"{tool}: {ln}", "remove or narrow that rule", nets, version, excluded))
    for ln in lines:
        m = re.fullmatch(r"-P (INPUT|PREROUTING) (DROP|REJECT)", ln)
        if m:
            chain = m.group(1)
            reaches = [data_accept(x, version) for x in lines if x.startswith(f"-A {chain} ")]
            accepted = tuple(r for r in reaches if r is not None)
            if (None, None) not in accepted and (version, None) not in accepted:
                found.append(
                    Finding(
                        f"{tool}: chain {chain} has policy DROP and no rule accepts "
                        + ("multicast" if not accepted else "all multicast (only some groups)"),
                        f"{tool} -I {chain} -m pkttype --pkt-type multicast -j ACCEPT"
                        + (" (and -p igmp -j ACCEPT)" if tool == "iptables" else ""),
                        version=version,
                        accepted=accepted,
                    )
                )
    return found


def _nft_sets(text: str) -> dict[tuple[str, str], str]:
    """The elements of every named set and map: (table, name) -> their text, to read a rule
    that names one (``ip daddr @name drop``) as if it listed them."""
    sets: dict[tuple[str, str], str] = {}
    table = ""
    current: tuple[str, str] | None = None
    body: list[str] = []
    for raw in text.splitlines():
        ln = raw.strip()
        if current is not None:
            if ln == "}":
                joined = " ".join(body)
                sets[current] = joined.partition("elements =")[2] if "elements =" in joined else ""
                current = None
            else:
                body.append(ln)
        elif m := re.match(r"table (\S+ \S+) \{", ln):
            table = m.group(1)
        elif m := re.match(r"(?:set|map) (\S+) \{", ln):
            current, body = (table, m.group(1)), []
    return sets


def _with_sets(rule: str, table: str, sets: dict[tuple[str, str], str]) -> str:
    """``rule`` with each named set it names (``@name``) replaced by the set's elements."""
    return re.sub(r"@([\w.-]+)", lambda m: sets.get((table, m.group(1)), ""), rule)


def nft_findings(text: str) -> list[Finding]:
    """Findings in ``nft list ruleset`` output."""
    found = []
    sets = _nft_sets(text)
    table = chain = ""
    hook_input = policy_drop = False
    accepts: list[Reach] = []

    def close_chain() -> None:
        everything = {(None, None), (_nft_version(table), None)}
        if chain and hook_input and policy_drop and not everything.intersection(accepts):
            found.append(
                Finding(
                    f"nftables: chain {table} {chain} (hook input) has policy drop and no rule accepts "
                    + ("multicast" if not accepts else "all multicast (only some groups or one IP version)"),
                    f"nft insert rule {table} {chain} meta pkttype multicast accept "
                    "(and accept igmp / icmpv6 mld), or change the policy",
                    version=_nft_version(table),
                    accepted=tuple(accepts),
                )
            )

    for raw in text.splitlines():
        ln = raw.strip()
        if m := re.match(r"table (\S+ \S+) \{", ln):
            table = m.group(1)
        elif m := re.match(r"chain (\S+) \{", ln):
            chain, hook_input, policy_drop, accepts = m.group(1), False, False, []
        elif ln == "}" and chain:
            close_chain()
            chain = ""
        elif chain and ln.startswith("type "):
            hook_input = bool(re.search(r"\bhook (input|prerouting)\b", ln))
            policy_drop = bool(re.search(r"\bpolicy drop\b", ln))
        elif chain and ln:
            # (a named set is read as the elements it holds)
            whole = _with_sets(ln, table, sets) if "@" in ln else ln
            rule, excluded = split_negated(whole)
            if _DROP.search(rule) and (mentions_multicast(rule) or _nft_catch_all(rule)):
                found.append(
                    Finding(
                        f"nftables: {table} {chain}: {ln}",
                        "remove or narrow that rule",
                        multicast_nets(rule),
                        _nft_version(table),
                        excluded,
                    )
                )
            elif (reach := data_accept(whole, _nft_version(table))) is not None:
                accepts.append(reach)
    return found


def _nft_version(table: str) -> int | None:
    """4 for an ``ip`` table, 6 for ``ip6``; None for ``inet``, ``bridge``, ``netdev`` (both)."""
    family = table.split(maxsplit=1)[0] if table else ""
    return {"ip": 4, "ip6": 6}.get(family)
