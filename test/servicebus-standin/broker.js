// TEST INFRASTRUCTURE ONLY: part of the Service Bus stand-in used by dvrouter's tests.
//
// The broker: queues, topics and subscriptions, each with a dead-letter queue, holding every
// message ever sent to them with its state, so tests can both receive messages and inspect
// what arrived. It knows nothing of AMQP framing; amqp.js turns links into "receivers":
//   { sessionId, presettled, credit(), isOpen(), deliver(record, bytes, deliveryTag) }
'use strict';

const crypto = require('crypto');
const types = require('rhea').types;
const codec = require('./codec.js');

// The lock token travels as the delivery tag in .NET GUID byte order; the SDK swaps it back
// to RFC 4122 order, which is the order $management requests carry.
function dotnetOrder(token) {
    const t = Buffer.from(token);
    t[0] = token[3]; t[1] = token[2]; t[2] = token[1]; t[3] = token[0];
    t[4] = token[5]; t[5] = token[4];
    t[6] = token[7]; t[7] = token[6];
    return t;
}

function newLockToken() {
    return Buffer.from(crypto.randomUUID().replace(/-/g, ''), 'hex');
}

// .NET ticks (100 ns since 0001-01-01) are how Service Bus states a session's locked-until.
function dotnetTicks(ms) {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE((BigInt(ms) + 62135596800000n) * 10000n);
    return b;
}

class Entity {
    constructor(name, kind, parent) {
        this.name = name;
        this.kind = kind; // queue | topic | subscription | deadletter
        this.parent = parent || null;
        this.nextSeq = 1;
        this.log = []; // every record ever, in arrival order: the side channel reads it
        this.available = []; // active records ordered by sequence number, from index head
        this.head = 0;
        this.locked = new Map(); // lock token (hex, RFC order) -> record
        this.receivers = [];
        this.turn = 0; // round-robin position among receivers
        this.sessions = new Map(); // session id -> { owner, state }
        this.subscriptions = new Map(); // topics only: lower-case name -> Entity
        this.deadLetter = null;
        // Duplicate detection (queues and topics, as Azure's requiresDuplicateDetection): the
        // message ids seen, with when each was first enqueued.
        this.duplicateDetection = false;
        this.seenIds = new Map(); // message id -> ms of its first enqueue, oldest first
    }

    push(rec) {
        const a = this.available;
        if (a.length === this.head || a[a.length - 1].seq < rec.seq) {
            a.push(rec);
            return;
        }
        let lo = this.head;
        let hi = a.length;
        while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (a[mid].seq < rec.seq) lo = mid + 1; else hi = mid;
        }
        a.splice(lo, 0, rec);
    }

    // take removes and returns the first available record the receiver may have.
    take(receiver) {
        const a = this.available;
        for (let i = this.head; i < a.length; i++) {
            const rec = a[i];
            const group = rec.msg.properties.group_id;
            if (receiver.sessionId !== null) {
                if (group !== receiver.sessionId) continue;
            } else if (group) {
                const s = this.sessions.get(group);
                if (s && s.owner) continue;
            }
            if (i === this.head) {
                a[i] = undefined;
                this.head++;
                if (this.head > 1024 && this.head * 2 > a.length) {
                    this.available = a.slice(this.head);
                    this.head = 0;
                }
            } else {
                a.splice(i, 1);
            }
            return rec;
        }
        return null;
    }

    session(id) {
        let s = this.sessions.get(id);
        if (!s) {
            s = { owner: null, state: null };
            this.sessions.set(id, s);
        }
        return s;
    }
}

const PEEKABLE = new Set(['active', 'locked', 'deferred', 'scheduled']);

class Broker {
    constructor(options) {
        this.lockDurationMs = options.lockDurationMs;
        this.maxDeliveryCount = options.maxDeliveryCount;
        this.autoCreate = options.autoCreate;
        this.duplicateWindowMs = options.duplicateWindowMs || 600000;
        this.entities = new Map(); // lower-case path -> Entity
    }

    // requireDuplicateDetection turns duplicate detection on for a queue or topic.
    requireDuplicateDetection(name) {
        const e = this.entities.get(String(name).toLowerCase());
        if (!e || (e.kind !== 'queue' && e.kind !== 'topic')) {
            throw new Error('duplicate detection: ' + JSON.stringify(name) + ' is not a queue or topic');
        }
        e.duplicateDetection = true;
        return e;
    }

    // isDuplicate reports whether a message id was first enqueued on the entity within the
    // window, and otherwise remembers it. Service Bus accepts a duplicate (the send succeeds)
    // and drops it; a message without an id is never a duplicate.
    isDuplicate(entity, msg, now) {
        if (!entity.duplicateDetection) return false;
        const id = codec.idText(msg.properties.message_id);
        if (id === '') return false;
        const seen = entity.seenIds;
        for (const [old, at] of seen) { // oldest first: forget what left the window
            if (now - at < this.duplicateWindowMs) break;
            seen.delete(old);
        }
        if (seen.has(id)) return true;
        seen.set(id, now);
        return false;
    }

    // define creates entities from the --entities syntax: "q" is a queue,
    // "t/subscriptions/s" a topic t with a subscription s. It is idempotent.
    define(spec) {
        const m = /^([^/]+)\/subscriptions\/([^/]+)$/i.exec(spec);
        if (m) {
            const topic = this.defineTopic(m[1]);
            const key = (topic.name + '/subscriptions/' + m[2]).toLowerCase();
            let sub = this.entities.get(key);
            if (!sub) {
                sub = new Entity(topic.name + '/subscriptions/' + m[2], 'subscription', topic);
                this.add(sub);
                topic.subscriptions.set(key, sub);
            }
            return sub;
        }
        if (spec.includes('/')) throw new Error('entity ' + JSON.stringify(spec) + ': use "queue" or "topic/subscriptions/name"');
        const existing = this.entities.get(spec.toLowerCase());
        if (existing) {
            if (existing.kind !== 'queue') throw new Error('entity ' + spec + ' is a ' + existing.kind + ', not a queue');
            return existing;
        }
        const q = new Entity(spec, 'queue');
        this.add(q);
        return q;
    }

    defineTopic(name) {
        const existing = this.entities.get(name.toLowerCase());
        if (existing) {
            if (existing.kind !== 'topic') throw new Error('entity ' + name + ' is a ' + existing.kind + ', not a topic');
            return existing;
        }
        const t = new Entity(name, 'topic');
        this.entities.set(name.toLowerCase(), t);
        return t;
    }

    add(e) {
        this.entities.set(e.name.toLowerCase(), e);
        e.deadLetter = new Entity(e.name + '/$deadletterqueue', 'deadletter', e);
        this.entities.set(e.deadLetter.name.toLowerCase(), e.deadLetter);
    }

    // lookup finds an entity by path, case-insensitively as Service Bus does; with
    // autoCreate it creates the queue or subscription a well-formed path names.
    lookup(path, create) {
        const key = path.replace(/^\/+/, '').toLowerCase();
        const e = this.entities.get(key);
        if (e || !(create && this.autoCreate)) return e || null;
        if (key.endsWith('/$deadletterqueue')) {
            const parent = this.lookup(path.replace(/^\/+/, '').slice(0, -'/$deadletterqueue'.length), true);
            return parent ? parent.deadLetter : null;
        }
        try {
            return this.define(path.replace(/^\/+/, ''));
        } catch (err) {
            return null;
        }
    }

    // send records encoded messages sent to a queue or topic and returns the records.
    send(entity, buffers) {
        const parsed = buffers.map(codec.parse); // parse all first: a bad batch stores nothing
        const now = Date.now();
        const out = [];
        for (const msg of parsed) {
            if (this.isDuplicate(entity, msg, now)) {
                // Kept in the side channel only, with no sequence number, as state duplicate.
                const rec = this.record(entity, msg, now, true);
                rec.state = 'duplicate';
                out.push(rec);
                continue;
            }
            if (entity.kind === 'topic') {
                const rec = this.record(entity, msg, now);
                rec.state = 'published';
                for (const sub of entity.subscriptions.values()) {
                    this.enqueue(sub, this.record(sub, msg, now));
                }
                out.push(rec);
            } else {
                out.push(this.enqueue(entity, this.record(entity, msg, now)));
            }
        }
        return out;
    }

    record(entity, msg, now, unsequenced) {
        const rec = {
            entity, msg, seq: unsequenced ? 0 : entity.nextSeq++, enqueuedAt: now, state: 'active',
            prior: 0, lastCount: 0, deferred: false, lockToken: null, lockHex: '', lockedUntil: 0,
            timer: null, deadLetterReason: null, deadLetterErrorDescription: null,
        };
        entity.log.push(rec);
        return rec;
    }

    enqueue(entity, rec) {
        const at = rec.msg.annotations.get('x-opt-scheduled-enqueue-time');
        const when = at && at.value instanceof Date ? at.value.getTime() : 0;
        if (when > Date.now()) {
            rec.state = 'scheduled';
            rec.timer = setTimeout(() => {
                rec.timer = null;
                if (rec.state !== 'scheduled') return;
                rec.state = 'active';
                entity.push(rec);
                this.pump(entity);
            }, when - Date.now());
            return rec;
        }
        rec.state = 'active';
        entity.push(rec);
        this.pump(entity);
        return rec;
    }

    attach(entity, receiver) {
        entity.receivers.push(receiver);
        this.pump(entity);
    }

    detach(entity, receiver) {
        this.drop(entity, (r) => r === receiver);
        this.pump(entity); // messages of a released session may go to others now
    }

    // drop forgets receivers and frees the sessions they held.
    drop(entity, gone) {
        entity.receivers = entity.receivers.filter((r) => !gone(r));
        for (const s of entity.sessions.values()) {
            if (s.owner && gone(s.owner)) s.owner = null;
        }
    }

    // acceptSession locks a session for a receiver: the named one, or with id null the first
    // session that has an available message and no owner. It returns the id or an error
    // condition, which the SDK maps to its own codes.
    acceptSession(entity, receiver, id) {
        if (id === null) {
            for (let i = entity.head; i < entity.available.length; i++) {
                const group = entity.available[i].msg.properties.group_id;
                const owner = group ? entity.session(group).owner : null;
                if (group && (!owner || !owner.isOpen())) {
                    id = group;
                    break;
                }
            }
            if (id === null) {
                return { error: 'com.microsoft:timeout', description: 'no unlocked session has messages (the stand-in does not wait)' };
            }
        }
        const s = entity.session(id);
        if (s.owner && s.owner !== receiver && s.owner.isOpen()) {
            return { error: 'com.microsoft:session-cannot-be-locked', description: 'session ' + id + ' is locked by another receiver' };
        }
        s.owner = receiver;
        return { id, lockedUntilTicks: dotnetTicks(Date.now() + this.lockDurationMs) };
    }

    pump(entity) {
        if (entity.pumping) return;
        entity.pumping = true;
        try {
            // A connection that dropped without detaching leaves its receivers behind.
            this.drop(entity, (r) => !r.isOpen());
            let moved = true;
            while (moved && entity.available.length > entity.head) {
                moved = false;
                const rs = entity.receivers;
                for (let n = 0; n < rs.length; n++) {
                    const r = rs[(entity.turn + n) % rs.length];
                    if (!r.isOpen() || r.credit() <= 0) continue;
                    const rec = entity.take(r);
                    if (!rec) continue;
                    this.deliver(rec, r);
                    entity.turn = (entity.turn + n + 1) % rs.length;
                    moved = true;
                    break;
                }
            }
        } finally {
            entity.pumping = false;
        }
    }

    deliver(rec, receiver) {
        rec.lastCount = rec.prior + 1;
        if (receiver.presettled) {
            // receive-and-delete: the message is gone the moment it is sent
            rec.state = 'completed';
            receiver.deliver(rec, this.encode(rec, false), newLockToken());
            return;
        }
        this.lock(rec);
        receiver.deliver(rec, this.encode(rec, false), dotnetOrder(rec.lockToken));
    }

    lock(rec) {
        rec.state = 'locked';
        rec.lockToken = newLockToken();
        rec.lockHex = rec.lockToken.toString('hex');
        rec.entity.locked.set(rec.lockHex, rec);
        this.setLockTimer(rec);
    }

    setLockTimer(rec) {
        if (rec.timer) clearTimeout(rec.timer);
        rec.lockedUntil = Date.now() + this.lockDurationMs;
        const hex = rec.lockHex;
        rec.timer = setTimeout(() => {
            rec.timer = null;
            if (rec.state === 'locked' && rec.lockHex === hex) this.abandon(rec, null);
        }, this.lockDurationMs);
    }

    unlock(rec) {
        if (rec.timer) clearTimeout(rec.timer);
        rec.timer = null;
        rec.entity.locked.delete(rec.lockHex);
        rec.lockHex = '';
        rec.lockToken = null;
    }

    // encode writes a record as the SDK expects to receive or peek it.
    encode(rec, withLockAnnotation) {
        const ann = new Map();
        ann.set('x-opt-sequence-number', types.wrap_long(rec.seq));
        ann.set('x-opt-enqueued-time', types.wrap_timestamp(rec.enqueuedAt));
        if (rec.state === 'locked') ann.set('x-opt-locked-until', types.wrap_timestamp(rec.lockedUntil));
        if (rec.deferred) ann.set('x-opt-message-state', types.wrap_long(1));
        if (rec.state === 'scheduled') ann.set('x-opt-message-state', types.wrap_long(2));
        let da = null;
        if (withLockAnnotation && rec.lockToken) {
            da = new Map([['x-opt-lock-token', types.wrap_uuid(rec.lockToken)]]);
        }
        return codec.encode(rec.msg, { deliveryCount: rec.prior, annotations: ann, deliveryAnnotations: da });
    }

    // lockedRecord finds the record a lock token names, or null when the lock is lost.
    lockedRecord(entity, tokenHex) {
        const rec = entity.locked.get(tokenHex);
        return rec && rec.state === 'locked' ? rec : null;
    }

    complete(rec) {
        this.unlock(rec);
        rec.state = 'completed';
    }

    // release puts a message back without counting a delivery (AMQP released: the client
    // never looked at it).
    release(rec) {
        this.unlock(rec);
        this.requeue(rec);
    }

    // abandon counts the delivery, then dead-letters the message past the max delivery
    // count or puts it back.
    abandon(rec, propertiesToModify) {
        this.unlock(rec);
        this.modify(rec, propertiesToModify);
        rec.prior++;
        if (rec.prior >= this.maxDeliveryCount) {
            this.moveToDeadLetter(rec, 'MaxDeliveryCountExceeded',
                'Message could not be consumed after ' + this.maxDeliveryCount + ' delivery attempts.', null);
            return;
        }
        this.requeue(rec);
    }

    defer(rec, propertiesToModify) {
        this.unlock(rec);
        this.modify(rec, propertiesToModify);
        rec.deferred = true;
        rec.state = 'deferred';
    }

    deadLetter(rec, reason, description, propertiesToModify) {
        this.unlock(rec);
        this.moveToDeadLetter(rec, reason, description, propertiesToModify);
    }

    requeue(rec) {
        if (rec.deferred) {
            rec.state = 'deferred';
            return;
        }
        rec.state = 'active';
        rec.entity.push(rec);
        this.pump(rec.entity);
    }

    modify(rec, props) {
        if (!props) return;
        const keys = Object.keys(props);
        if (keys.length === 0) return;
        rec.msg = Object.assign({}, rec.msg, { applicationProperties: new Map(rec.msg.applicationProperties || []) });
        for (const k of keys) rec.msg.applicationProperties.set(k, types.wrap(props[k]));
    }

    moveToDeadLetter(rec, reason, description, props) {
        rec.state = 'deadlettered';
        rec.deadLetterReason = reason;
        rec.deadLetterErrorDescription = description;
        const dlq = rec.entity.deadLetter;
        if (!dlq) return; // a dead-letter queue has none of its own: the message ends here
        const app = new Map(rec.msg.applicationProperties || []);
        if (reason !== null && reason !== undefined) app.set('DeadLetterReason', types.wrap_string(String(reason)));
        if (description !== null && description !== undefined) {
            app.set('DeadLetterErrorDescription', types.wrap_string(String(description)));
        }
        for (const k of Object.keys(props || {})) app.set(k, types.wrap(props[k]));
        const annotations = new Map(rec.msg.annotations);
        annotations.set('x-opt-deadletter-source', types.wrap_string(rec.entity.name));
        const msg = Object.assign({}, rec.msg, { applicationProperties: app, annotations });
        const copy = {
            entity: dlq, msg, seq: rec.seq, enqueuedAt: rec.enqueuedAt, state: 'active',
            prior: rec.prior, lastCount: rec.lastCount, deferred: false, lockToken: null, lockHex: '',
            lockedUntil: 0, timer: null, deadLetterReason: reason, deadLetterErrorDescription: description,
        };
        dlq.log.push(copy);
        dlq.push(copy);
        this.pump(dlq);
    }

    peek(entity, fromSeq, count) {
        return entity.log
            .filter((r) => r.seq >= fromSeq && PEEKABLE.has(r.state))
            .sort((a, b) => a.seq - b.seq)
            .slice(0, Math.max(0, count));
    }

    // receiveDeferred locks deferred messages by sequence number for settlement on the
    // $management link.
    receiveDeferred(entity, seqs) {
        const wanted = new Set(seqs.map(Number));
        const out = [];
        for (const rec of entity.log) {
            if (rec.state === 'deferred' && wanted.has(rec.seq)) {
                rec.lastCount = rec.prior + 1;
                this.lock(rec);
                out.push(rec);
            }
        }
        return out;
    }

    cancelScheduled(entity, seqs) {
        const wanted = new Set(seqs.map(Number));
        for (const rec of entity.log) {
            if (rec.state === 'scheduled' && wanted.has(rec.seq)) {
                clearTimeout(rec.timer);
                rec.timer = null;
                rec.state = 'cancelled';
            }
        }
    }

    // view is what the side channel shows of one record.
    view(rec) {
        const m = rec.msg;
        const p = m.properties;
        const appProps = {};
        const appTypes = {};
        for (const [k, v] of m.applicationProperties || []) {
            appProps[k] = codec.jsonValue(v);
            appTypes[k] = (v && v.type && codec.TYPE_NAMES[v.type.typecode]) || 'unknown';
        }
        const sched = m.annotations.get('x-opt-scheduled-enqueue-time');
        const partitionKey = m.annotations.get('x-opt-partition-key');
        return {
            entity: rec.entity.name,
            sequenceNumber: rec.seq,
            messageId: codec.idText(p.message_id),
            contentType: p.content_type || '',
            correlationId: codec.idText(p.correlation_id),
            subject: p.subject || '',
            to: p.to || '',
            replyTo: p.reply_to || '',
            sessionId: p.group_id || '',
            replyToSessionId: p.reply_to_group_id || '',
            partitionKey: partitionKey ? String(partitionKey.value) : '',
            timeToLiveMs: m.header.ttl || 0,
            scheduledEnqueueTime: sched && sched.value instanceof Date ? sched.value.toISOString() : null,
            applicationProperties: appProps,
            applicationPropertyTypes: appTypes,
            bodyType: m.bodyType,
            body: Buffer.concat(m.data).toString('base64'),
            value: m.bodyType === 'value' ? codec.plain(m.value) : null,
            size: m.size,
            state: rec.state,
            deliveryCount: rec.lastCount,
            enqueuedTime: new Date(rec.enqueuedAt).toISOString(),
            lockedUntil: rec.state === 'locked' ? new Date(rec.lockedUntil).toISOString() : null,
            deadLetterReason: rec.deadLetterReason,
            deadLetterErrorDescription: rec.deadLetterErrorDescription,
        };
    }

    list() {
        const out = [];
        for (const e of this.entities.values()) {
            const counts = {};
            for (const r of e.log) counts[r.state] = (counts[r.state] || 0) + 1;
            out.push({ name: e.name, kind: e.kind, messages: e.log.length, states: counts, receivers: e.receivers.length });
        }
        return out;
    }

    // snapshot and restore carry the messages across a restart (Stop then Restart in the Go
    // helper). Locks do not survive: a locked message comes back available, uncounted.
    snapshot() {
        const recs = (e) => e.log.map((r) => ({
            seq: r.seq, state: r.state, prior: r.prior, lastCount: r.lastCount, deferred: r.deferred,
            enqueuedAt: r.enqueuedAt, deadLetterReason: r.deadLetterReason,
            deadLetterErrorDescription: r.deadLetterErrorDescription,
            bytes: codec.encode(r.msg, { deliveryCount: 0 }).toString('base64'),
        }));
        const out = [];
        for (const e of this.entities.values()) {
            if (e.kind === 'deadletter') continue;
            out.push({
                name: e.name, kind: e.kind, nextSeq: e.nextSeq, records: recs(e),
                deadLetter: e.deadLetter ? recs(e.deadLetter) : [],
                sessionStates: [...e.sessions].filter(([, s]) => s.state).map(([id, s]) => [id, s.state.toString('base64')]),
                duplicateDetection: e.duplicateDetection,
                seenIds: [...e.seenIds],
            });
        }
        return { version: 1, entities: out };
    }

    restore(snap) {
        for (const s of snap.entities) {
            if (s.kind === 'topic') this.defineTopic(s.name);
            else this.define(s.name);
        }
        for (const s of snap.entities) {
            const e = this.lookup(s.name, false);
            e.nextSeq = s.nextSeq;
            if (s.duplicateDetection) e.duplicateDetection = true;
            for (const [id, at] of s.seenIds || []) e.seenIds.set(id, at);
            for (const [id, state] of s.sessionStates || []) e.session(id).state = Buffer.from(state, 'base64');
            const load = (entity, list) => {
                for (const r of list) {
                    const rec = {
                        entity, msg: codec.parse(Buffer.from(r.bytes, 'base64')), seq: r.seq,
                        enqueuedAt: r.enqueuedAt, state: r.state, prior: r.prior, lastCount: r.lastCount,
                        deferred: r.deferred, lockToken: null, lockHex: '', lockedUntil: 0, timer: null,
                        deadLetterReason: r.deadLetterReason, deadLetterErrorDescription: r.deadLetterErrorDescription,
                    };
                    entity.log.push(rec);
                    if (rec.state === 'locked') rec.state = rec.deferred ? 'deferred' : 'active';
                    if (rec.state === 'active' || rec.state === 'scheduled') this.enqueue(entity, rec);
                }
            };
            load(e, s.records);
            if (e.deadLetter) load(e.deadLetter, s.deadLetter);
        }
    }
}

module.exports = { Broker, dotnetOrder };
