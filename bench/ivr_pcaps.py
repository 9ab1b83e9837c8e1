#!/usr/bin/env python3
"""Writes a caller's RTP stream as a pcap for sipp's play_pcap_audio (bench/ivr_load.sh).

usage: ivr_pcaps.py --out FILE.pcap [--secs 45] [--speech AT:FILE.ul ...] [--keys AT:DIGITS ...]
                    [--pt-audio 0] [--pt-event 101] [--ssrc N]

One 20 ms RTP packet every 20 ms for --secs seconds (PCMU, payload type 0, digital silence
0xFF), from 127.0.0.1:6000 to 127.0.0.1:20000 in Ethernet/IPv4/UDP frames (sipp replays the
UDP payload from its media port to the port in Crest's SDP answer; only the difference
between the ports in the file matters, so one port each way).
  --speech AT:FILE.ul   raw 8 kHz mu-law audio (sox -t raw -e mu-law) from AT seconds on
  --keys AT:DIGITS      RFC 4733 telephone-events from AT seconds: each key 100 ms (event
                        packets every 20 ms replace the audio, the first with the marker bit,
                        the last three with the E bit, the duration growing by 160), then
                        200 ms of audio before the next key
The payload types must be the ones the scenario's SDP offers (0 PCMU, 101 telephone-event).
Standard library only.
"""
import argparse
import random
import struct
import sys

EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
PTIME = 0.020
SAMPLES = 160  # 8 kHz x 20 ms


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(payload, sport=6000, dport=20000, ip_id=0):
    src = dst = bytes([127, 0, 0, 1])
    ulen = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xB8, 20 + ulen, ip_id & 0xFFFF, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\0" * 12 + b"\x08\x00"
    return eth + ip + udp


def rtp(pt, marker, seq, ts, ssrc, payload):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--secs", type=float, default=45.0)
    ap.add_argument("--speech", action="append", default=[])
    ap.add_argument("--keys", action="append", default=[])
    ap.add_argument("--pt-audio", type=int, default=0)
    ap.add_argument("--pt-event", type=int, default=101)
    ap.add_argument("--ssrc", type=int, default=None)
    a = ap.parse_args()

    n = int(round(a.secs / PTIME))
    audio = bytearray(b"\xff" * (n * SAMPLES))  # mu-law digital silence
    for spec in a.speech:
        at, path = spec.split(":", 1)
        start = int(round(float(at) * 8000))
        data = open(path, "rb").read()
        data = data[: max(0, len(audio) - start)]
        audio[start : start + len(data)] = data

    # slot -> (event, duration_units, end, first); keys replace the audio in their slots
    events = {}
    for spec in a.keys:
        at, digits = spec.split(":", 1)
        slot = int(round(float(at) / PTIME))
        for d in digits:
            if d not in EVENTS:
                sys.exit(f"not a DTMF key: {d!r}")
            start_slot = slot
            for k in range(5):  # 5 x 20 ms: 100 ms, durations 160..800
                events[slot] = (EVENTS[d], (k + 1) * SAMPLES, k == 4, k == 0, start_slot)
                slot += 1
            for _ in range(2):  # two more end packets (RFC 4733 2.5.1.4), same duration
                events[slot] = (EVENTS[d], 5 * SAMPLES, True, False, start_slot)
                slot += 1
            slot += 10  # 200 ms of audio between keys

    rnd = random.Random(a.out)
    ssrc = a.ssrc if a.ssrc is not None else rnd.getrandbits(32)
    seq, ts0 = rnd.getrandbits(16), rnd.getrandbits(32)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # DLT_EN10MB
        for i in range(n):
            if i in events:
                ev, dur, end, first, start_slot = events[i]
                body = struct.pack("!BBH", ev, (0x80 if end else 0) | 10, dur)
                pkt = rtp(a.pt_event, first, seq, ts0 + start_slot * SAMPLES, ssrc, body)
            else:
                pkt = rtp(a.pt_audio, i == 0, seq, ts0 + i * SAMPLES, ssrc, bytes(audio[i * SAMPLES : (i + 1) * SAMPLES]))
            seq += 1
            data = frame(pkt, ip_id=i)
            t = 1_000_000_000 + i * 20_000  # microseconds
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(data), len(data)))
            f.write(data)
    n_ev = len(events)
    print(f"{a.out}: {n} packets, {a.secs:g} s, {n_ev} telephone-event packets (pt {a.pt_event}), audio pt {a.pt_audio}, ssrc {ssrc:#010x}")


if __name__ == "__main__":
    main()
