#!/usr/bin/env python3
"""Kernel parity cases: craft each case's frames with scapy, send them on the client's veth end,
and capture what comes back.

Run by tests/parity.rs inside the client network namespace, once while the Linux kernel answers
and once while afxdp-responder runs. Arguments: one JSON object with the lab's names, MACs and
addresses (see `Lab` below), then `--fib` for the routing/neighbour cases (`fib_cases`) instead
of the packet-format ones, then optionally case names to run only those. Prints one JSON object per case, one per line:

    {"case": "v4-basic", "replies": ["<hex frame>", ...], "kernel_icmp_out": 1}

`replies` are the frames that arrived on the client's interface addressed to the client's MAC
(VLAN tag put back from the packet socket's auxiliary data), without neighbour discovery.
KERNEL_ICMP_OUT is how many ICMP/ICMPv6 messages the responder namespace's kernel sent during the
case (neighbour discovery and MLD not counted): it says whether the kernel or the responder
answered.

Only the lab's own addresses (198.18.0.0/15, 2001:db8::/32, link-local and the lab's multicast and
broadcast groups on the veth) are used; every case sends a handful of frames and listens for a
bounded time.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import time

os.environ.setdefault("SCAPY_USE_LIBPCAP", "no")
import logging  # noqa: E402

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
try:
    from scapy.layers.inet import ICMP, IP, IPOption_NOP, IPOption_RR, IPerror, UDPerror, fragment  # noqa: E402
    from scapy.layers.inet6 import (  # noqa: E402
        ICMPv6EchoRequest,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        fragment6,
    )
    from scapy.layers.l2 import Dot1Q, Ether  # noqa: E402
    from scapy.packet import Raw  # noqa: E402
except ImportError as e:
    sys.exit(f"parity.py: scapy is missing ({e}): ./run.sh installs it, or run: python3 -m pip install scapy")

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
PACKET_OUTGOING = 4

# How long to listen after a case's last frame. The lone first fragment waits for the kernel's
# reassembly timeout (the test sets ipfrag_time to 1 s in the responder namespace).
LISTEN = 0.25
LISTEN_FRAGMENT_TIMEOUT = 1.8


class Lab:
    def __init__(self, cfg):
        self.iface = cfg["client_if"]
        self.responder_ns = cfg["responder_ns"]
        self.c_mac = cfg["client_mac"]
        self.r_mac = cfg["responder_mac"]
        self.c4 = cfg["client_v4"]
        self.r4 = cfg["responder_v4"]
        self.bcast4 = cfg["broadcast_v4"]
        self.other4 = cfg["other_v4"]
        self.c6 = cfg["client_v6"]
        self.r6 = cfg["responder_v6"]
        self.other6 = cfg["other_v6"]
        self.c6_ll = cfg["client_v6_ll"]
        self.r6_ll = cfg["responder_v6_ll"]
        self.other_mac = cfg["other_mac"]
        self.responder_if = cfg.get("responder_if", "")


def pattern(n):
    """A payload of n bytes that differs from byte to byte (a shifted copy would show)."""
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def cases(lab):
    """(name, [frames], listen seconds). Every frame is bytes, ready for the wire."""
    eth = Ether(src=lab.c_mac, dst=lab.r_mac)
    ip4 = IP(src=lab.c4, dst=lab.r4)
    ip6 = IPv6(src=lab.c6, dst=lab.r6)

    def echo4(payload=56, **icmp):
        return ICMP(type=8, id=0x1234, seq=1, **icmp) / Raw(pattern(payload))

    def echo6(payload=56, seq=1):
        return ICMPv6EchoRequest(id=0x1234, seq=seq, data=pattern(payload))

    def b(*pkts):
        return [bytes(p) for p in pkts]

    out = []

    def case(name, frames, listen=LISTEN):
        out.append((name, frames, listen))

    # ---- IPv4 ----
    case("v4-basic", b(eth / ip4 / echo4()))
    case("v4-odd-payload", b(eth / ip4 / echo4(57)))
    case("v4-empty-payload", b(eth / ip4 / ICMP(type=8, id=0x1234, seq=1)))
    case("v4-ethernet-trailer", [bytes(eth / ip4 / echo4(5)) + bytes(range(0xA0, 0xB8))])
    case("v4-payload-1472", b(eth / ip4 / echo4(1472)))
    case("v4-ip-options-nop", b(eth / IP(src=lab.c4, dst=lab.r4, options=[IPOption_NOP()] * 4) / echo4()))
    case(
        "v4-ip-options-record-route",
        b(eth / IP(src=lab.c4, dst=lab.r4, options=[IPOption_RR(pointer=4, routers=["0.0.0.0"] * 4)]) / echo4()),
    )
    frags = fragment(IP(src=lab.c4, dst=lab.r4, id=0x4242) / echo4(1000), fragsize=400)
    case("v4-fragments", b(*[eth / f for f in frags]))
    lone = fragment(IP(src=lab.c4, dst=lab.r4, id=0x4343) / echo4(1000), fragsize=400)[0]
    case("v4-lone-first-fragment", b(eth / lone), LISTEN_FRAGMENT_TIMEOUT)
    good = ICMP(bytes(echo4()))
    case("v4-bad-icmp-checksum", b(eth / ip4 / ICMP(type=8, id=0x1234, seq=1, chksum=good.chksum ^ 0x5A5A) / Raw(pattern(56))))
    good_ip = IP(bytes(ip4 / echo4()))
    case("v4-bad-ip-header-checksum", b(eth / IP(src=lab.c4, dst=lab.r4, chksum=good_ip.chksum ^ 0x00FF) / echo4()))
    # ICMP header cut to its first 4 bytes (type, code, checksum), IP total length 24.
    cut = bytes(ICMP(type=8, id=0x1234, seq=1))[:4]
    case("v4-icmp-truncated-4", b(eth / IP(src=lab.c4, dst=lab.r4, proto=1) / Raw(cut)))
    case("v4-total-length-beyond-frame", b(eth / IP(src=lab.c4, dst=lab.r4, len=200) / echo4()))
    case("v4-subnet-broadcast", b(Ether(src=lab.c_mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=lab.c4, dst=lab.bcast4) / echo4()))
    case(
        "v4-limited-broadcast",
        b(Ether(src=lab.c_mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=lab.c4, dst="255.255.255.255") / echo4()),
    )
    case("v4-multicast-224.0.0.1", b(Ether(src=lab.c_mac, dst="01:00:5e:00:00:01") / IP(src=lab.c4, dst="224.0.0.1") / echo4()))
    case("v4-other-host-ip-our-mac", b(eth / IP(src=lab.c4, dst=lab.other4) / echo4()))
    case("v4-our-ip-other-mac", b(Ether(src=lab.c_mac, dst=lab.other_mac) / ip4 / echo4()))
    case("v4-broadcast-source", b(eth / IP(src="255.255.255.255", dst=lab.r4) / echo4()))
    case("v4-source-0.0.0.0", b(eth / IP(src="0.0.0.0", dst=lab.r4) / echo4()))
    case("v4-ttl1-tos-b8-df-id", b(eth / IP(src=lab.c4, dst=lab.r4, ttl=1, tos=0xB8, flags="DF", id=0xBEEF) / echo4()))
    case("v4-echo-code-1", b(eth / ip4 / echo4(code=1)))
    case("v4-timestamp-request", b(eth / ip4 / ICMP(type=13, id=0x1234, seq=1, ts_ori=12345678, ts_rx=0, ts_tx=0)))
    case("v4-unsolicited-echo-reply", b(eth / ip4 / ICMP(type=0, id=0x1234, seq=1) / Raw(pattern(56))))
    quoted = IPerror(src=lab.r4, dst=lab.c4, proto=17) / UDPerror(sport=4242, dport=33434)
    case("v4-destination-unreachable", b(eth / ip4 / ICMP(type=3, code=3) / quoted))
    case("v4-vlan-100", b(Ether(src=lab.c_mac, dst=lab.r_mac) / Dot1Q(vlan=100, prio=5) / ip4 / echo4()))
    case("v4-vlan-0-priority-tag", b(Ether(src=lab.c_mac, dst=lab.r_mac) / Dot1Q(vlan=0, prio=5) / ip4 / echo4()))

    # ---- IPv6 ----
    case("v6-basic", b(eth / ip6 / echo6()))
    case("v6-odd-payload", b(eth / ip6 / echo6(57)))
    case("v6-payload-1452", b(eth / ip6 / echo6(1452)))
    good6 = ICMPv6EchoRequest(bytes(ip6 / echo6())[40:])
    bad6 = ICMPv6EchoRequest(id=0x1234, seq=1, data=pattern(56), cksum=good6.cksum ^ 0x5A5A)
    case("v6-bad-checksum", b(eth / ip6 / bad6))
    case("v6-multicast-ff02::1", b(Ether(src=lab.c_mac, dst="33:33:00:00:00:01") / IPv6(src=lab.c6, dst="ff02::1") / echo6()))
    case("v6-other-host-address", b(eth / IPv6(src=lab.c6, dst=lab.other6) / echo6()))
    case("v6-link-local", b(eth / IPv6(src=lab.c6_ll, dst=lab.r6_ll) / echo6()))
    case("v6-hop-by-hop", b(eth / ip6 / IPv6ExtHdrHopByHop() / echo6()))
    case("v6-destination-options", b(eth / ip6 / IPv6ExtHdrDestOpt() / echo6()))
    case("v6-vlan-0-priority-tag", b(Ether(src=lab.c_mac, dst=lab.r_mac) / Dot1Q(vlan=0, prio=3) / ip6 / echo6()))
    frags6 = fragment6(ip6 / IPv6ExtHdrFragment(id=0x4242) / echo6(1000), 512)
    case("v6-fragments", b(*[eth / f for f in frags6]))
    return out


def fib_cases(lab):
    """The cases where the host's routing and neighbour state decide whether and where a reply
    goes (issue 10: the XDP program asks the kernel's FIB). Run with `--fib`, after tests/parity.rs
    enabled forwarding on the responder's interface (bpf_fib_lookup needs it) and added the routes
    named below in the responder namespace; tests/parity.rs runs the same cases once more with
    forwarding off, where the responder's host mirror decides. (name, [frames], listen seconds, [commands to run in
    the responder namespace first])."""
    eth = Ether(src=lab.c_mac, dst=lab.r_mac)
    dev = lab.responder_if

    def echo4(payload=56):
        return ICMP(type=8, id=0x1234, seq=1) / Raw(pattern(payload))

    def echo6(payload=56):
        return ICMPv6EchoRequest(id=0x1234, seq=1, data=pattern(payload))

    def v4(src, payload=56, mac=None):
        return bytes(Ether(src=mac or lab.c_mac, dst=lab.r_mac) / IP(src=src, dst=lab.r4) / echo4(payload))

    def v6(src, payload=56, mac=None):
        return bytes(Ether(src=mac or lab.c_mac, dst=lab.r_mac) / IPv6(src=src, dst=lab.r6) / echo6(payload))

    def forget(addr):
        # `ip neigh del` fails when there is no entry: `|| true` keeps the case going.
        return ["sh", "-c", f"ip neigh del {addr} dev {dev} 2>/dev/null || true"]

    out = []

    def case(name, frames, before=(), listen=LISTEN):
        out.append((name, frames, listen, list(before)))

    case("fib-v4-neighbour-resolves", [v4(lab.c4)], [forget(lab.c4)], listen=1.0)
    case("fib-v6-neighbour-resolves", [v6(lab.c6)], [forget(lab.c6)], listen=1.0)
    # Now both neighbours are resolved (whatever the previous run left).
    case("fib-v4-basic", [v4(lab.c4)])
    case("fib-v6-basic", [v6(lab.c6)])
    case("fib-v4-source-own-address", [v4(lab.r4)])
    case("fib-v4-source-subnet-broadcast", [v4(lab.bcast4)])
    # The neighbour answers ARP / NS (the client owns the address): the kernel resolves it first,
    # then answers; the responder must leave it to the kernel.
    case("fib-v4-source-no-route", [v4("198.19.9.9")])
    case("fib-v6-source-no-route", [v6("2001:db8:9::9")])
    case("fib-v4-source-blackhole", [v4("198.19.1.5")])
    case("fib-v4-source-unreachable", [v4("198.19.2.5")])
    case("fib-v4-source-prohibit", [v4("198.19.3.5")])
    case("fib-v6-source-blackhole", [v6("2001:db8:11::5")])
    case("fib-v6-source-unreachable", [v6("2001:db8:12::5")])
    case("fib-v6-source-prohibit", [v6("2001:db8:13::5")])
    case("fib-v6-ipv4-compatible-source", [v6("::198.18.0.2")])
    # Routed back by the client, with a small route MTU: Linux fragments the reply.
    case("fib-v4-reply-over-route-mtu", [v4("198.19.4.9", 1000)])
    case("fib-v6-reply-over-route-mtu", [v6("2001:db8:4::9", 1400)])
    # The same with an unlocked route MTU, which bpf_fib_lookup does not see (a known difference).
    case("fib-v6-reply-over-unlocked-route-mtu", [v6("2001:db8:5::9", 1400)])
    # A request whose source MAC is not the neighbour table's: the reply goes to the table's MAC.
    case("fib-v4-source-mac-not-the-neighbours", [v4(lab.c4, mac=lab.other_mac)], listen=1.0)
    case("fib-v6-source-mac-not-the-neighbours", [v6(lab.c6, mac=lab.other_mac)], listen=1.0)
    # Source MACs that are not a neighbour's at all: all-zero, our own, multicast. Linux answers
    # the neighbour table's MAC (a multicast source MAC is the kernel's: the program passes it).
    case("fib-v4-source-mac-zero", [v4(lab.c4, mac="00:00:00:00:00:00")])
    case("fib-v6-source-mac-zero", [v6(lab.c6, mac="00:00:00:00:00:00")])
    case("fib-v4-source-mac-ours", [v4(lab.c4, mac=lab.r_mac)])
    case("fib-v4-source-mac-multicast", [v4(lab.c4, mac="01:00:5e:00:00:01")])
    # A route with `hoplimit 9` back to the source: Linux's reply has TTL / hop limit 9.
    case("fib-v4-route-hoplimit", [v4("198.19.6.6")])
    case("fib-v6-route-hoplimit", [v6("2001:db8:6::6")])
    # Link-local: the kernel resolves the client's link-local address first (forgotten here, so
    # that both runs start alike), whether or not the FIB or the mirror is asked.
    case("fib-v6-link-local", b_frames(eth / IPv6(src=lab.c6_ll, dst=lab.r6_ll) / echo6()), [forget(lab.c6_ll)], listen=1.0)
    # The responder's interface changes its MAC while running: a request still sent to the old
    # MAC is not taken by Linux any more; one sent to the new MAC is answered from it. Then the
    # MAC goes back, which flushes the neighbour table: the kernel resolves the client again.
    new_mac = "02:af:00:00:00:42"
    # (The kernel may send ICMPv6 of its own right after a MAC change: wait before counting.)
    settle = ["sleep", "1"]
    case("fib-v4-to-the-old-mac-after-a-mac-change", [v4(lab.c4)], [["ip", "link", "set", "dev", dev, "address", new_mac], settle])
    to_new = bytes(Ether(src=lab.c_mac, dst=new_mac) / IP(src=lab.c4, dst=lab.r4) / echo4())
    case("fib-v4-to-the-new-mac-after-a-mac-change", [to_new])
    case("fib-v4-after-the-mac-is-back", [v4(lab.c4)], [["ip", "link", "set", "dev", dev, "address", lab.r_mac], settle], listen=0.5)
    # Last: the kernel gives up resolving these after about 3 s and may then send an ICMP error
    # to its own address, which would count as a later case's answer; the long listen of the
    # last case catches it.
    case("fib-v4-source-network-address", [v4("198.18.0.0")])
    case("fib-v4-source-no-neighbour", [v4("198.18.0.77")], [forget("198.18.0.77")])
    case("fib-v6-source-no-neighbour", [v6("2001:db8:0:1::77")], [forget("2001:db8:0:1::77")], listen=4.0)
    return out


def b_frames(*pkts):
    return [bytes(p) for p in pkts]


def kernel_icmp_out(ns):
    """ICMP + ICMPv6 messages the responder namespace's kernel has sent, without ND and MLD."""
    text = subprocess.run(
        ["ip", "netns", "exec", ns, "cat", "/proc/net/snmp", "/proc/net/snmp6"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    counters = {}
    lines = text.splitlines()
    for head, values in zip(lines, lines[1:]):
        if head.startswith("Icmp: ") and values.startswith("Icmp: ") and head != values:
            names, nums = head.split()[1:], values.split()[1:]
            if nums and nums[0].isdigit():
                counters.update({"Icmp" + n: int(v) for n, v in zip(names, nums)})
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("Icmp6") and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    v6_noise = [
        "Icmp6OutNeighborSolicits",
        "Icmp6OutNeighborAdvertisements",
        "Icmp6OutRouterSolicits",
        "Icmp6OutMLDv2Reports",
        "Icmp6OutGroupMembReports",
        "Icmp6OutGroupMembReductions",
    ]
    v6 = counters.get("Icmp6OutMsgs", 0) - sum(counters.get(n, 0) for n in v6_noise)
    return counters.get("IcmpOutMsgs", 0) + v6


def is_noise(frame, c_mac):
    """Frames that are not an answer to the case: not to the client's MAC (or to Ethernet
    broadcast, where Linux answers a subnet-broadcast source), not IP, ND/MLD."""
    if frame[0:6] != c_mac and frame[0:6] != b"\xff" * 6:
        return True
    ethertype = struct.unpack("!H", frame[12:14])[0]
    l3 = 14
    if ethertype in (0x8100, 0x88A8):
        ethertype = struct.unpack("!H", frame[16:18])[0]
        l3 = 18
    if ethertype == 0x0800:
        return False
    if ethertype != 0x86DD:
        return True
    # ICMPv6 directly after the fixed header: neighbour discovery (133-137) is not an answer.
    return len(frame) > l3 + 40 and frame[l3 + 6] == 58 and 133 <= frame[l3 + 40] <= 137


def receive(sock, until, c_mac):
    frames = []
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return frames
        sock.settimeout(left)
        try:
            data, ancdata, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(32))
        except (socket.timeout, BlockingIOError):
            return frames
        if addr[2] == PACKET_OUTGOING:
            continue
        for level, kind, aux in ancdata:
            if level != SOL_PACKET or kind != PACKET_AUXDATA or len(aux) < 20:
                continue
            status, _len, _snap, _mac, _net, tci, tpid = struct.unpack("IIIHHHH", aux[:20])
            if status & TP_STATUS_VLAN_VALID:
                if not status & TP_STATUS_VLAN_TPID_VALID:
                    tpid = 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        if not is_noise(data, c_mac):
            frames.append(data)


def main():
    lab = Lab(json.loads(sys.argv[1]))
    args = sys.argv[2:]
    fib = "--fib" in args
    only = set(a for a in args if a != "--fib")
    c_mac = bytes.fromhex(lab.c_mac.replace(":", ""))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.bind((lab.iface, 0))
    chosen = fib_cases(lab) if fib else [(n, f, t, []) for n, f, t in cases(lab)]
    for name, frames, listen, before_cmds in chosen:
        if only and name not in only:
            continue
        for cmd in before_cmds:
            subprocess.run(["ip", "netns", "exec", lab.responder_ns, *cmd], check=True, timeout=10)
        # Whatever arrived before this case is not its answer.
        receive(sock, time.monotonic() + 0.02, c_mac)
        before = kernel_icmp_out(lab.responder_ns)
        for frame in frames:
            sock.send(frame)
        replies = receive(sock, time.monotonic() + listen, c_mac)
        after = kernel_icmp_out(lab.responder_ns)
        sent = ",".join(f.hex() for f in frames)
        got = ",".join(r.hex() for r in replies) or "-"
        print(f"case\t{name}\t{after - before}\t{sent}\t{got}", flush=True)


if __name__ == "__main__":
    main()
