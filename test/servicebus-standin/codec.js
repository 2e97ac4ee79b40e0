// TEST INFRASTRUCTURE ONLY: part of the Service Bus stand-in used by dvrouter's tests.
//
// Message codec. A message is kept as the sections the sender wrote: properties, body and
// footer stay byte for byte, while header, message annotations and application properties are
// kept as rhea typed values so the broker can change them (delivery count, lock annotations,
// dead-letter reason) without changing the AMQP type of anything the sender set.
'use strict';

const rhea = require('rhea');
const types = rhea.types;
const amqpMessage = rhea.message;

// rhea decodes format-0 transfers into plain JavaScript values before any handler sees them,
// which loses the raw bytes and the AMQP types of application properties. The stand-in
// replaces the decoder that rhea's session uses with one that hands the bytes through, and
// decodes them itself. `decode` below is the original, for CBS and $management requests.
const decode = amqpMessage.decode;
amqpMessage.decode = function passRawBytes(buffer) {
    return { raw: buffer };
};

const SECTION = {
    header: 0x70,
    deliveryAnnotations: 0x71,
    messageAnnotations: 0x72,
    properties: 0x73,
    applicationProperties: 0x74,
    data: 0x75,
    sequence: 0x76,
    value: 0x77,
    footer: 0x78,
};

const SYMBOLIC_SECTION = {
    'amqp:header:list': 0x70,
    'amqp:delivery-annotations:map': 0x71,
    'amqp:message-annotations:map': 0x72,
    'amqp:properties:list': 0x73,
    'amqp:application-properties:map': 0x74,
    'amqp:data:binary': 0x75,
    'amqp:amqp-sequence:list': 0x76,
    'amqp:value:*': 0x77,
    'amqp:footer:map': 0x78,
};

// The message format of a Service Bus batch: the body is one Data section per message.
const BATCH_FORMAT = 0x80013700;

function sectionCode(descriptor) {
    if (!descriptor) return undefined;
    const v = descriptor.value;
    if (typeof v === 'number') return v;
    if (typeof v === 'string') return SYMBOLIC_SECTION[v];
    if (Buffer.isBuffer(v) && v.length === 8) return Number(v.readBigUInt64BE(0));
    return undefined;
}

// typedMap turns the [key, value, key, value...] items of an AMQP map into a Map from the
// key's text to the value, still typed.
function typedMap(items) {
    const m = new Map();
    for (let i = 0; i + 1 < items.length; i += 2) {
        m.set(String(items[i].value), items[i + 1]);
    }
    return m;
}

// parse splits one encoded message into its sections. It throws on bytes that are not an
// AMQP message; callers turn that into a rejected delivery.
function parse(buffer) {
    const reader = new types.Reader(buffer);
    const msg = {
        header: {},
        annotations: new Map(),
        properties: {},
        propertiesRaw: null,
        applicationProperties: null,
        bodyRaw: [],
        bodyType: '',
        data: [],
        value: undefined,
        footerRaw: null,
        size: buffer.length,
    };
    while (reader.remaining() > 0) {
        const start = reader.position;
        const section = reader.read();
        const raw = buffer.subarray(start, reader.position);
        switch (sectionCode(section.descriptor)) {
        case SECTION.header:
            msg.header = decode(raw);
            break;
        case SECTION.deliveryAnnotations:
            break; // per hop: never forwarded
        case SECTION.messageAnnotations:
            msg.annotations = typedMap(section.value);
            break;
        case SECTION.properties:
            msg.propertiesRaw = raw;
            msg.properties = decode(raw);
            break;
        case SECTION.applicationProperties:
            msg.applicationProperties = typedMap(section.value);
            break;
        case SECTION.data:
            msg.bodyRaw.push(raw);
            msg.bodyType = 'data';
            msg.data.push(section.value);
            break;
        case SECTION.sequence:
            msg.bodyRaw.push(raw);
            msg.bodyType = 'sequence';
            break;
        case SECTION.value:
            msg.bodyRaw.push(raw);
            msg.bodyType = 'value';
            msg.value = types.unwrap(section);
            break;
        case SECTION.footer:
            msg.footerRaw = raw;
            break;
        default:
            throw new Error('unknown message section at byte ' + start);
        }
    }
    return msg;
}

// splitBatch returns the encoded messages carried by a batch transfer.
function splitBatch(buffer) {
    const outer = parse(buffer);
    return outer.data;
}

function writeMap(writer, code, map, keyWrapper) {
    const items = [];
    for (const [k, v] of map) {
        items.push(keyWrapper(k), v);
    }
    writer.write(types.described(types.wrap_ulong(code), types.Map32(items)));
}

// encode writes a message for delivery. extra.deliveryCount sets the header's delivery-count,
// extra.annotations (a Map of typed values) are laid over the sender's message annotations,
// extra.deliveryAnnotations (a Map) adds a delivery-annotations section.
function encode(msg, extra) {
    const writer = new types.Writer();
    const header = Object.assign({}, msg.header, { delivery_count: extra.deliveryCount });
    writer.write(amqpMessage.header(header).described());
    if (extra.deliveryAnnotations && extra.deliveryAnnotations.size > 0) {
        writeMap(writer, SECTION.deliveryAnnotations, extra.deliveryAnnotations, types.wrap_symbol);
    }
    const annotations = new Map(msg.annotations);
    if (extra.annotations) {
        for (const [k, v] of extra.annotations) annotations.set(k, v);
    }
    if (annotations.size > 0) {
        writeMap(writer, SECTION.messageAnnotations, annotations, types.wrap_symbol);
    }
    if (msg.propertiesRaw) writer.write_bytes(msg.propertiesRaw);
    if (msg.applicationProperties) {
        writeMap(writer, SECTION.applicationProperties, msg.applicationProperties, types.wrap_string);
    }
    for (const raw of msg.bodyRaw) writer.write_bytes(raw);
    if (msg.footerRaw) writer.write_bytes(msg.footerRaw);
    return writer.toBuffer();
}

const TYPE_NAMES = {
    0x40: 'null', 0x41: 'boolean', 0x42: 'boolean', 0x56: 'boolean',
    0x50: 'ubyte', 0x60: 'ushort', 0x70: 'uint', 0x52: 'uint', 0x43: 'uint',
    0x80: 'ulong', 0x53: 'ulong', 0x44: 'ulong',
    0x51: 'byte', 0x61: 'short', 0x71: 'int', 0x54: 'int', 0x81: 'long', 0x55: 'long',
    0x72: 'float', 0x82: 'double', 0x73: 'char', 0x83: 'timestamp', 0x98: 'uuid',
    0xa0: 'binary', 0xb0: 'binary', 0xa1: 'string', 0xb1: 'string', 0xa3: 'symbol', 0xb3: 'symbol',
    0x45: 'list', 0xc0: 'list', 0xd0: 'list', 0xc1: 'map', 0xd1: 'map', 0xe0: 'array', 0xf0: 'array',
};

function uuidString(b) {
    const h = b.toString('hex');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
}

// jsonValue turns a decoded AMQP value into something JSON can carry without loss:
// timestamps as RFC 3339 text, binary as base64, 64-bit integers beyond 2^53 as decimal text.
function jsonValue(typed) {
    const code = typed && typed.type ? typed.type.typecode : undefined;
    const v = types.unwrap(typed);
    if (code === 0x98 && Buffer.isBuffer(v)) return uuidString(v);
    if ((code === 0x81 || code === 0x80) && Buffer.isBuffer(v)) {
        return code === 0x81 ? v.readBigInt64BE(0).toString() : v.readBigUInt64BE(0).toString();
    }
    return plain(v);
}

function plain(v) {
    if (v === undefined || v === null) return null;
    if (v instanceof Date) return v.toISOString();
    if (Buffer.isBuffer(v)) return v.toString('base64');
    if (Array.isArray(v)) return v.map(plain);
    if (typeof v === 'object') {
        const o = {};
        for (const k of Object.keys(v)) o[k] = plain(v[k]);
        return o;
    }
    return v;
}

// idText renders a message-id or correlation-id, which AMQP allows to be a string, a uuid,
// an ulong or binary.
function idText(v) {
    if (v === undefined || v === null) return '';
    if (Buffer.isBuffer(v)) return v.length === 16 ? uuidString(v) : v.toString('base64');
    return String(v);
}

module.exports = {
    BATCH_FORMAT, parse, splitBatch, encode, decode, jsonValue, plain, idText, uuidString, TYPE_NAMES,
};
