#!/usr/bin/env python3
"""Appends (or replaces) the `astroclip_plugin_interface` custom section of a WASM module.

The astroclip host reads a WASM plugin's interface version from this section before it
compiles or runs anything (plugin interface 1.x). WAT declares it inline (`(@custom ...)`);
Zig, `zig cc` (C) and AssemblyScript builds cannot emit it, so they run this step:

    python3 add_version_section.py plugin.wasm 1.1.0
"""
import sys

NAME = b"astroclip_plugin_interface"


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_leb(d: bytes, i: int):
    r = s = 0
    while True:
        b = d[i]
        i += 1
        r |= (b & 0x7F) << s
        s += 7
        if b < 0x80:
            return r, i


def main(path: str, version: str) -> None:
    d = open(path, "rb").read()
    if d[:8] != b"\0asm\x01\0\0\0":
        sys.exit(f"{path}: not a WASM module (version 1)")
    out, i = bytearray(d[:8]), 8
    while i < len(d):
        start = i
        sid = d[i]
        size, j = read_leb(d, i + 1)
        end = j + size
        if sid == 0:
            n, k = read_leb(d, j)
            if d[k : k + n] == NAME:
                i = end
                continue  # drop an older copy
        out += d[start:end]
        i = end
    payload = leb(len(NAME)) + NAME + version.encode()
    out += b"\0" + leb(len(payload)) + payload
    open(path, "wb").write(bytes(out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
