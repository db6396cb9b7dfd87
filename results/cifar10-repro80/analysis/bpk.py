"""Minimal reader of Burn's burnpack (.bpk) files: a 10-byte header (magic "NRUB", version u16,
metadata length u32), CBOR metadata naming each tensor's dtype, shape and byte range, then the
tensor data, 256-byte aligned and little-endian. Reads f32 tensors only."""
import array
import struct

_SIMPLE = {20: False, 21: True, 22: None}


def _argument(b, i, info, major):
    """The item's argument (or a float for major type 7) and the offset after it."""
    if info < 24:
        return info, i
    size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
    raw = b[i:i + size]
    if major == 7 and size in (4, 8):
        return struct.unpack(">f" if size == 4 else ">d", raw)[0], i + size
    return int.from_bytes(raw, "big"), i + size


def _item(b, i):
    major, info = b[i] >> 5, b[i] & 31
    val, i = _argument(b, i + 1, info, major)
    if major == 0:
        return val, i
    if major == 1:
        return -1 - val, i
    if major in (2, 3):
        raw = b[i:i + val]
        return (raw.decode() if major == 3 else raw), i + val
    if major == 4:
        out = []
        for _ in range(val):
            x, i = _item(b, i)
            out.append(x)
        return out, i
    if major == 5:
        out = {}
        for _ in range(val):
            k, i = _item(b, i)
            out[k], i = _item(b, i)
        return out, i
    if major == 7:
        return (val if isinstance(val, float) else _SIMPLE.get(val)), i
    raise ValueError(f"unsupported CBOR major type {major}")


def load(path):
    """{tensor name: (shape, array('f'))} of a .bpk file."""
    b = open(path, "rb").read()
    if b[:4] != b"NRUB":
        raise ValueError(f"{path}: not a burnpack file")
    meta_len = struct.unpack("<I", b[6:10])[0]
    meta, _ = _item(b, 10)
    start = -(-(10 + meta_len) // 256) * 256
    out = {}
    for name, d in meta["tensors"].items():
        if d["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {d['dtype']}, only F32 is read")
        lo, hi = d["data_offsets"]
        a = array.array("f")
        a.frombytes(b[start + lo:start + hi])
        out[name] = (d["shape"], a)
    return out
