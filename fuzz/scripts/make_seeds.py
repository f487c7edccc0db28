#!/usr/bin/env python3
"""Writes the seed corpus of the `respond` fuzz target (fuzz/corpus/respond/): valid IPv4 / IPv6 /
VLAN echo requests and near-misses, one raw Ethernet frame per file. Checksums are computed here,
from scratch. Addresses only from 198.18.0.0/15 and 2001:db8::/32. Re-run to regenerate:
    python3 fuzz/scripts/make_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "respond")
US, PEER = bytes.fromhex("0200c6120001"), bytes.fromhex("0200c6120002")
V4_US, V4_PEER = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
V6_US = bytes.fromhex("20010db8000000000000000000000001")
V6_PEER = bytes.fromhex("20010db8000000000000000000000002")
DATA = bytes(range(56))


def csum(data, initial=0):
    if len(data) % 2:
        data += b"\0"
    s = initial
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(ethertype, dst=US, src=PEER, vlan=None):
    if vlan is None:
        return dst + src + struct.pack("!H", ethertype)
    tpid, tci = vlan
    return dst + src + struct.pack("!HHH", tpid, tci, ethertype)


def icmp4(typ=8, code=0, ident=0x1234, seq=1, data=DATA, bad=False):
    msg = struct.pack("!BBHHH", typ, code, 0, ident, seq) + data
    c = csum(msg) ^ (0x0101 if bad else 0)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def ipv4(payload, src=V4_PEER, dst=V4_US, ttl=61, tos=0, ident=0x3C1D, frag=0x4000, proto=1, options=b"", bad=False):
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(payload), ident, frag, ttl, proto, 0, src, dst)
    hdr += options
    c = csum(hdr) ^ (0x0101 if bad else 0)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def icmp6(src, dst, typ=128, code=0, ident=0x1C2B, seq=7, data=DATA, bad=False):
    msg = struct.pack("!BBHHH", typ, code, 0, ident, seq) + data
    pseudo = src + dst + struct.pack("!I", len(msg)) + b"\0\0\0\x3a"
    c = csum(pseudo + msg) ^ (0x0101 if bad else 0)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def ipv6(payload, src=V6_PEER, dst=V6_US, nh=58, hlim=57, flow=0x289B3E1):
    return struct.pack("!IHBB", (6 << 28) | flow, len(payload), nh, hlim) + src + dst + payload


def v6_echo(src=V6_PEER, dst=V6_US, **kw):
    return ipv6(icmp6(src, dst, **kw), src, dst)


SEEDS = {
    # Answered.
    "v4-basic": eth(0x0800) + ipv4(icmp4()),
    "v4-empty": eth(0x0800) + ipv4(icmp4(data=b"")),
    "v4-odd": eth(0x0800) + ipv4(icmp4(data=b"abc")),
    "v4-padded": eth(0x0800) + ipv4(icmp4(data=b"")) + b"\0" * 18,
    "v4-vlan100": eth(0x0800, vlan=(0x8100, 100)) + ipv4(icmp4()),
    "v4-vlan0-prio": eth(0x0800, vlan=(0x8100, 0xA000)) + ipv4(icmp4()),
    "v4-qinq-88a8": eth(0x0800, vlan=(0x88A8, 7)) + ipv4(icmp4()),
    "v4-all-zero": eth(0x0800) + ipv4(icmp4(ident=0, seq=0, data=bytes(8))),
    "v4-code1": eth(0x0800) + ipv4(icmp4(code=1)),
    "v4-ttl1-tos": eth(0x0800) + ipv4(icmp4(), ttl=1, tos=0xB8, ident=0x8001),
    "v6-basic": eth(0x86DD) + v6_echo(),
    "v6-odd": eth(0x86DD) + v6_echo(data=b"abcde"),
    "v6-vlan100": eth(0x86DD, vlan=(0x8100, 100)) + v6_echo(),
    "v6-link-local": eth(0x86DD)
    + v6_echo(src=bytes.fromhex("fe800000000000000000000000000002"), dst=bytes.fromhex("fe800000000000000000000000000001")),
    # Dropped.
    "v4-bad-icmp-csum": eth(0x0800) + ipv4(icmp4(bad=True)),
    "v4-bad-ip-csum": eth(0x0800) + ipv4(icmp4(), bad=True),
    "v4-options": eth(0x0800) + ipv4(icmp4(), options=b"\x01\x01\x01\x00"),
    "v4-fragment": eth(0x0800) + ipv4(icmp4(), frag=0x2000),
    "v4-broadcast": eth(0x0800, dst=b"\xff" * 6) + ipv4(icmp4(), dst=bytes([255] * 4)),
    "v4-multicast": eth(0x0800) + ipv4(icmp4(), dst=bytes([224, 0, 0, 1])),
    "v4-echo-reply": eth(0x0800) + ipv4(icmp4(typ=0)),
    "v4-timestamp": eth(0x0800) + ipv4(icmp4(typ=13, data=bytes(12))),
    "v4-truncated-icmp": eth(0x0800) + ipv4(icmp4(data=b"")[:4]),
    "v4-total-len-long": (lambda f: f[:16] + struct.pack("!H", 200) + f[18:])(eth(0x0800) + ipv4(icmp4())),
    "v4-udp": eth(0x0800) + ipv4(b"\x30\x39\x00\x35\x00\x08\x00\x00", proto=17),
    "v4-qinq-double": eth(0x8100, vlan=(0x88A8, 7)) + b"\x00\x64\x08\x00" + ipv4(icmp4()),
    "v6-bad-csum": eth(0x86DD) + v6_echo(bad=True),
    "v6-multicast": eth(0x86DD, dst=bytes.fromhex("333300000001")) + v6_echo(dst=bytes.fromhex("ff020000000000000000000000000001")),
    "v6-hop-by-hop": eth(0x86DD) + ipv6(b"\x3a\x00\x01\x04\x00\x00\x00\x00" + icmp6(V6_PEER, V6_US), nh=0),
    "v6-fragment": eth(0x86DD) + ipv6(b"\x3a\x00\x00\x01\x00\x00\x00\x2a" + icmp6(V6_PEER, V6_US), nh=44),
    "arp": eth(0x0806) + bytes.fromhex("0001080006040001") + PEER + V4_PEER + bytes(6) + V4_US,
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, frame in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(frame)
    print(f"{len(SEEDS)} seeds in {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
