"""OTLP/JSON written by an encoder that is not Watchtower's: Python protobuf's json_format.

`random SEED COUNT`: COUNT random requests per signal that fill every field and oneof of the
OTLP messages (over the whole set), each written as OTLP/JSON the way different clients do:
ids in hex of either case, enums as names or numbers, doubles as numbers, shortest round-trip
strings or "NaN"/"Infinity", 64-bit integers as strings or numbers, lowerCamelCase or
original field names.
`examples FILE...`: each OTLP/JSON file parsed by json_format (ids turned from hex to the
base64 that plain ProtoJSON expects).
Prints one JSON object per line: {"signal", "json", "proto" (base64 of the binary message)}.
"""
import base64
import json
import random
import struct
import sys

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor as F
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

REQUESTS = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
ID_LEN = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
INT64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
INT32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32, F.TYPE_UINT32, F.TYPE_FIXED32}
RANGES = {
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1), F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1), F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1), F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
}
MAX_DEPTH = 11  # request > ... > data point > exemplar > attribute > nested values


def is_repeated(field):
    # protobuf >= 6 has the property; older ones only `label`
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == F.LABEL_REPEATED


def rand_double(rng):
    kind = rng.random()
    if kind < 0.1:
        return rng.choice([float("nan"), float("inf"), float("-inf"), 0.0, -0.0])
    if kind < 0.3:
        return float(rng.randint(-(2**70), 2**70))
    if kind < 0.6:
        return rng.uniform(-1e6, 1e6)
    while True:  # any finite binary64
        v = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if v == v and v not in (float("inf"), float("-inf")):
            return v


def rand_int(rng, ftype):
    lo, hi = RANGES[ftype]
    if rng.random() < 0.3:
        return rng.choice([lo, hi, 0, 1, -1 if lo < 0 else 2])
    return rng.randint(lo, hi)


def rand_string(rng):
    alphabet = 'ab Zé"\\/\n\t\x01\u2028€😀<>&'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def rand_scalar(rng, field):
    t = field.type
    if t == F.TYPE_DOUBLE:
        return rand_double(rng)
    if t == F.TYPE_FLOAT:
        return struct.unpack("<f", struct.pack("<f", rng.uniform(-1e3, 1e3)))[0]
    if t in RANGES:
        return rand_int(rng, t)
    if t == F.TYPE_BOOL:
        return rng.random() < 0.5
    if t == F.TYPE_STRING:
        return rand_string(rng)
    if t == F.TYPE_BYTES:
        if field.name in ID_LEN:
            return b"" if rng.random() < 0.1 else rng.randbytes(ID_LEN[field.name])
        return rng.randbytes(rng.randint(0, 9))
    if t == F.TYPE_ENUM:
        if rng.random() < 0.1:
            return rng.randint(100, 2**31 - 1)  # proto3 enums are open
        return rng.choice(field.enum_type.values).number
    raise ValueError(f"unhandled type {t} of {field.full_name}")


def fill(rng, msg, depth=0):
    desc = msg.DESCRIPTOR
    chosen = {}
    for oneof in desc.oneofs:
        if oneof.fields and not getattr(oneof, "is_synthetic", False) and len(oneof.fields) > 1:
            chosen[oneof.name] = rng.choice(list(oneof.fields) + [None])
    for field in desc.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.name in chosen and chosen[oneof.name] is not field:
            continue
        if oneof is None and depth > 0 and rng.random() < 0.15:
            continue  # left at its default
        if oneof is not None and oneof.name not in chosen and rng.random() < 0.4:
            continue  # proto3 `optional`, absent
        is_msg = field.type == F.TYPE_MESSAGE
        if is_msg and depth >= MAX_DEPTH:
            continue
        repeated = is_repeated(field)
        if repeated:
            for _ in range(rng.randint(1, 2) if depth < 4 else rng.randint(0, 2)):
                if is_msg:
                    fill(rng, getattr(msg, field.name).add(), depth + 1)
                else:
                    getattr(msg, field.name).append(rand_scalar(rng, field))
        elif is_msg:
            sub = getattr(msg, field.name)
            sub.SetInParent()
            fill(rng, sub, depth + 1)
        else:
            setattr(msg, field.name, rand_scalar(rng, field))


def fields_by_json_key(desc):
    out = {}
    for f in desc.fields:
        out[f.json_name] = f
        out[f.name] = f
    return out


def b64_to_hex(rng, text):
    h = base64.b64decode(text).hex()
    return h.upper() if rng.random() < 0.3 else h


def rewrite(rng, value, desc):
    """Rewrites json_format's output the way other OTLP/JSON clients write it."""
    fields = fields_by_json_key(desc)
    out = {}
    for key, v in value.items():
        f = fields[key]
        if is_repeated(f):
            out[key] = [rewrite_one(rng, x, f) for x in v]
        else:
            out[key] = rewrite_one(rng, v, f)
    return out


def rewrite_one(rng, v, f):
    t = f.type
    if t == F.TYPE_MESSAGE:
        return rewrite(rng, v, f.message_type)
    if t == F.TYPE_BYTES and f.name in ID_LEN:
        return b64_to_hex(rng, v)  # OTLP's exception: ids in hex
    if t == F.TYPE_BYTES:
        if rng.random() < 0.3:  # URL-safe alphabet, unpadded
            return v.replace("+", "-").replace("/", "_").rstrip("=")
        return v
    if t == F.TYPE_DOUBLE:
        if isinstance(v, str):
            return v  # "NaN", "Infinity", "-Infinity"
        r = rng.random()
        if r < 0.3:
            return repr(float(v))  # shortest round-trip text, as a string
        if r < 0.5 and float(v).is_integer() and abs(v) < 1e300:
            return int(v)  # a whole double written as an integer (JavaScript)
        return v
    if t in INT64:
        return int(v) if rng.random() < 0.4 else v  # json_format writes strings
    if t in INT32:
        return str(v) if rng.random() < 0.3 else v
    if t == F.TYPE_ENUM:
        if isinstance(v, str) and rng.random() < 0.3:
            return f.enum_type.values_by_name[v].number
        return v
    return v


def random_requests(seed, count):
    rng = random.Random(seed)
    for signal, cls in REQUESTS.items():
        for _ in range(count):
            msg = cls()
            fill(rng, msg)
            d = json_format.MessageToDict(
                msg,
                preserving_proto_field_name=rng.random() < 0.3,
                use_integers_for_enums=rng.random() < 0.3,
            )
            text = json.dumps(rewrite(rng, d, cls.DESCRIPTOR), ensure_ascii=rng.random() < 0.5)
            yield signal, text, msg.SerializeToString()


def hex_ids_to_base64(value):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id") and isinstance(v, str):
                out[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                out[k] = hex_ids_to_base64(v)
        return out
    if isinstance(value, list):
        return [hex_ids_to_base64(v) for v in value]
    return value


def example_requests(files):
    for path in files:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        doc = json.loads(text)
        signal = next(s for s, k in (("traces", "resourceSpans"), ("metrics", "resourceMetrics"), ("logs", "resourceLogs")) if k in doc)
        msg = json_format.ParseDict(hex_ids_to_base64(doc), REQUESTS[signal]())
        yield signal, text, msg.SerializeToString()


def main():
    if sys.argv[1] == "random":
        cases = random_requests(int(sys.argv[2]), int(sys.argv[3]))
    else:
        cases = example_requests(sys.argv[2:])
    for signal, text, proto in cases:
        print(json.dumps({"signal": signal, "json": text, "proto": base64.b64encode(proto).decode()}))


if __name__ == "__main__":
    main()
