// TEST INFRASTRUCTURE ONLY: part of the Service Bus stand-in used by dvrouter's tests.
//
// The AMQP 1.0 side: what the azservicebus SDK (go-amqp) expects of Service Bus on a link,
// built on rhea. Each client sender to an entity becomes an enqueue, each client receiver
// a broker receiver; $cbs and $management links are request/reply pairs.
'use strict';

const rhea = require('rhea');
const terminus = require('rhea/lib/terminus.js');
const codec = require('./codec.js');

const types = rhea.types;
const outcome = rhea.message;

const SESSION_FILTER = 'com.microsoft:session-filter';
const SESSION_FILTER_CODE = 0x137000000c;
const STATUS_LOCK_LOST = 410;

function log(verbose, ...args) {
    if (verbose) console.error('[servicebus-standin]', ...args);
}

// entityPath turns "amqps://ns.servicebus.windows.net/q" or "/q" into "q".
function entityPath(address) {
    const a = String(address || '');
    const m = /^[a-z]+:\/\/[^/]+\/(.*)$/i.exec(a);
    return (m ? m[1] : a).replace(/^\/+/, '');
}

function sessionFilter(source) {
    const filter = source && source.filter;
    if (!filter || !Object.prototype.hasOwnProperty.call(filter, SESSION_FILTER)) return undefined;
    const v = types.unwrap(filter[SESSION_FILTER]);
    return v === undefined || v === null ? null : String(v);
}

function start(broker, options) {
    const verbose = options.verbose;
    const container = rhea.create_container({ id: 'servicebus-standin' });
    const replyLinks = new Map(); // reply-to address -> rhea sender

    // refuse answers an attach the way Service Bus does: an attach with no terminus on our
    // side, then a detach carrying the error.
    function refuse(link, condition, description) {
        log(verbose, 'refuse', link.name, condition, description);
        link.sb = { kind: 'refused' };
        link.close({ condition, description });
    }

    function echoSettleModes(link) {
        const ra = link.remote.attach;
        link.local.attach.snd_settle_mode = ra.snd_settle_mode;
        link.local.attach.rcv_settle_mode = ra.rcv_settle_mode;
    }

    // A client receiver: $cbs or $management replies, or messages from an entity.
    container.on('sender_open', (ctx) => {
        const sender = ctx.sender;
        const ra = sender.remote.attach;
        echoSettleModes(sender);
        const address = entityPath(ra.source && ra.source.address);
        if (address === '$cbs' || address.toLowerCase().endsWith('/$management')) {
            sender.local.attach.source = ra.source.described();
            sender.local.attach.target = ra.target ? ra.target.described() : terminus.target({}).described();
            const replyTo = ra.target && ra.target.address;
            sender.sb = { kind: 'reply', replyTo };
            if (replyTo) replyLinks.set(replyTo, sender);
            return;
        }
        const entity = broker.lookup(address, true);
        if (!entity || entity.kind === 'topic') {
            refuse(sender, 'amqp:not-found', "The messaging entity '" + address + "' could not be found (Service Bus stand-in).");
            return;
        }
        sender.local.attach.target = ra.target ? ra.target.described() : terminus.target({}).described();
        const receiver = newReceiver(sender, entity);
        const wantedSession = sessionFilter(ra.source);
        if (wantedSession !== undefined) {
            const got = broker.acceptSession(entity, receiver, wantedSession);
            if (got.error) {
                refuse(sender, got.error, got.description);
                return;
            }
            receiver.sessionId = got.id;
            const filter = {};
            filter[SESSION_FILTER] = types.described(types.wrap_ulong(SESSION_FILTER_CODE), types.wrap_string(got.id));
            sender.local.attach.source = terminus.source({ address: ra.source.address, filter }).described();
            sender.local.attach.properties = { 'com.microsoft:locked-until-utc': types.wrap_long(got.lockedUntilTicks) };
        } else {
            sender.local.attach.source = ra.source.described();
        }
        sender.sb = { kind: 'entity', entity, receiver };
        broker.attach(entity, receiver);
    });

    function newReceiver(sender, entity) {
        const r = {
            sessionId: null,
            presettled: sender.remote.attach.snd_settle_mode === 1,
            sent: 0,
            isOpen: () => sender.is_open(),
            // rhea counts credit down only when a transfer leaves, on the next tick, so the
            // credit still unspent is the flow's limit less what we have handed to rhea.
            credit: () => {
                if (sender.session.outgoing.available() <= 0) return 0;
                return Math.min(sender.credit, sender.credit + sender.delivery_count - r.sent);
            },
            deliver: (rec, bytes, tag) => {
                r.sent++;
                const d = sender.send(bytes, tag, 0);
                d.sb = { rec, lockHex: rec.lockHex };
            },
        };
        return r;
    }

    // A client sender: $cbs or $management requests, or messages to an entity.
    container.on('receiver_open', (ctx) => {
        const receiver = ctx.receiver;
        const ra = receiver.remote.attach;
        echoSettleModes(receiver);
        receiver.local.attach.source = ra.source ? ra.source.described() : terminus.source({}).described();
        const address = entityPath(ra.target && ra.target.address);
        if (address === '$cbs') {
            receiver.local.attach.target = ra.target.described();
            receiver.sb = { kind: 'cbs' };
            return;
        }
        if (address.toLowerCase().endsWith('/$management')) {
            receiver.local.attach.target = ra.target.described();
            receiver.sb = { kind: 'management', path: address.slice(0, -'/$management'.length) };
            return;
        }
        const entity = broker.lookup(address, true);
        if (!entity) {
            refuse(receiver, 'amqp:not-found', "The messaging entity '" + address + "' could not be found (Service Bus stand-in).");
            return;
        }
        if (entity.kind !== 'queue' && entity.kind !== 'topic') {
            refuse(receiver, 'amqp:not-allowed', 'cannot send to ' + entity.kind + " '" + entity.name + "'");
            return;
        }
        receiver.local.attach.target = ra.target.described();
        // Without a max-message-size the SDK sizes every batch at zero bytes.
        receiver.local.attach.max_message_size = options.maxMessageSize;
        receiver.sb = { kind: 'entity', entity };
    });

    container.on('message', (ctx) => {
        const link = ctx.receiver;
        const delivery = ctx.delivery;
        const raw = ctx.format ? ctx.message : ctx.message.raw;
        const sb = link.sb || {};
        try {
            if (sb.kind === 'entity') {
                const buffers = ctx.format === codec.BATCH_FORMAT ? codec.splitBatch(raw) : [raw];
                broker.send(sb.entity, buffers);
            } else if (sb.kind === 'cbs') {
                const req = codec.decode(raw);
                reply(req, 202, 'Accepted', undefined);
            } else if (sb.kind === 'management') {
                manage(sb.path, codec.decode(raw));
            }
            delivery.update(true, outcome.accepted().described());
        } catch (err) {
            log(verbose, 'bad transfer:', err.message);
            delivery.update(true, outcome.rejected({ error: { condition: 'amqp:decode-error', description: String(err.message) } }).described());
        }
    });

    function reply(req, status, description, body) {
        const sender = replyLinks.get(req.reply_to);
        if (!sender || !sender.is_open()) {
            log(verbose, 'no reply link for', req.reply_to);
            return;
        }
        const msg = {
            correlation_id: req.message_id,
            application_properties: {
                'status-code': types.wrap_int(status),
                'status-description': description,
            },
        };
        if (body !== undefined) msg.body = body;
        sender.send(msg);
    }

    function tokenHexes(list) {
        return (Array.isArray(list) ? list : []).map((b) => Buffer.from(b).toString('hex'));
    }

    const operations = {
        'com.microsoft:renew-lock': (entity, body) => {
            const expirations = [];
            for (const hex of tokenHexes(body['lock-tokens'])) {
                const rec = broker.lockedRecord(entity, hex);
                if (!rec) return [STATUS_LOCK_LOST, 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.'];
                broker.setLockTimer(rec);
                expirations.push(new Date(rec.lockedUntil));
            }
            return [200, 'OK', { expirations: types.wrap_array(expirations, types.Timestamp.typecode) }];
        },
        'com.microsoft:peek-message': (entity, body) => {
            const recs = broker.peek(entity, Number(body['from-sequence-number'] || 0), Number(body['message-count'] || 1));
            if (recs.length === 0) return [204, 'No Content'];
            return [200, 'OK', { messages: recs.map((r) => ({ message: broker.encode(r, false) })) }];
        },
        'com.microsoft:update-disposition': (entity, body) => {
            const recs = [];
            for (const hex of tokenHexes(body['lock-tokens'])) {
                const rec = broker.lockedRecord(entity, hex);
                if (!rec) return [STATUS_LOCK_LOST, 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.'];
                recs.push(rec);
            }
            const props = body['properties-to-modify'] || null;
            for (const rec of recs) {
                switch (body['disposition-status']) {
                case 'completed': broker.complete(rec); break;
                case 'abandoned': broker.abandon(rec, props); break;
                case 'defered': broker.defer(rec, props); break;
                case 'suspended':
                    broker.deadLetter(rec, body['deadletter-reason'], body['deadletter-description'], props);
                    break;
                default: return [400, 'unknown disposition-status ' + body['disposition-status']];
                }
            }
            return [200, 'OK'];
        },
        'com.microsoft:receive-by-sequence-number': (entity, body) => {
            const recs = broker.receiveDeferred(entity, body['sequence-numbers'] || []);
            if (recs.length === 0) return [204, 'No Content'];
            return [200, 'OK', {
                messages: recs.map((r) => ({ 'lock-token': types.wrap_uuid(r.lockToken), message: broker.encode(r, true) })),
            }];
        },
        'com.microsoft:schedule-message': (entity, body) => {
            if (entity.kind !== 'queue' && entity.kind !== 'topic') return [400, 'cannot schedule on ' + entity.kind];
            const bytes = (body.messages || []).map((m) => m.message);
            const recs = broker.send(entity, bytes);
            return [200, 'OK', { 'sequence-numbers': types.wrap_array(recs.map((r) => r.seq), types.Long.typecode) }];
        },
        'com.microsoft:cancel-scheduled-message': (entity, body) => {
            broker.cancelScheduled(entity, body['sequence-numbers'] || []);
            return [200, 'OK'];
        },
        'com.microsoft:renew-session-lock': (entity, body) => {
            return [200, 'OK', { expiration: new Date(Date.now() + broker.lockDurationMs) }];
        },
        'com.microsoft:get-session-state': (entity, body) => {
            const s = entity.sessions.get(String(body['session-id']));
            return [200, 'OK', { 'session-state': s && s.state ? s.state : null }];
        },
        'com.microsoft:set-session-state': (entity, body) => {
            const state = body['session-state'];
            entity.session(String(body['session-id'])).state = state ? Buffer.from(state) : null;
            return [200, 'OK'];
        },
    };

    function manage(path, req) {
        const op = req.application_properties && req.application_properties.operation;
        const entity = broker.lookup(path, false);
        if (!entity) {
            reply(req, 404, "The messaging entity '" + path + "' could not be found (Service Bus stand-in).");
            return;
        }
        const fn = operations[op];
        if (!fn) {
            reply(req, 501, 'operation ' + op + ' is not implemented by the Service Bus stand-in');
            return;
        }
        const body = req.body && typeof req.body === 'object' ? req.body : {};
        let result;
        try {
            result = fn(entity, body);
        } catch (err) {
            result = [500, 'stand-in failed on ' + op + ': ' + err.message];
        }
        reply(req, result[0], result[1], result[2]);
    }

    // finish settles a delivery we sent with the given outcome. In receiver-settle-mode
    // second the client never settles after us, so rhea would keep the delivery in its
    // session buffer for ever and stop sending once that fills: mark it settled remotely.
    function finish(delivery, state) {
        delivery.update(true, state);
        delivery.remote_settled = true;
    }

    // Settlement of messages we delivered. In PeekLock the client settles second, so it
    // waits for our settled disposition: we answer with the outcome, or with Rejected
    // com.microsoft:message-lock-lost when the lock it names has expired.
    function settle(ctx, kind) {
        const delivery = ctx.delivery;
        if (!delivery.sb || delivery.settled) return;
        const rec = delivery.sb.rec;
        const state = delivery.remote_state || {};
        const current = rec.state === 'locked' && rec.lockHex === delivery.sb.lockHex;
        if (!current) {
            if (kind === 'released') {
                finish(delivery, outcome.released().described());
                return;
            }
            finish(delivery, outcome.rejected({ error: {
                condition: 'com.microsoft:message-lock-lost',
                description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
            } }).described());
            return;
        }
        const entity = rec.entity;
        switch (kind) {
        case 'accepted':
            broker.complete(rec);
            finish(delivery, outcome.accepted().described());
            break;
        case 'released':
            broker.release(rec);
            finish(delivery, outcome.released().described());
            break;
        case 'modified':
            if (state.undeliverable_here) broker.defer(rec, state.message_annotations);
            else broker.abandon(rec, state.message_annotations);
            finish(delivery, outcome.modified({
                delivery_failed: state.delivery_failed, undeliverable_here: state.undeliverable_here,
            }).described());
            break;
        case 'rejected': {
            const info = (state.error && state.error.info) || {};
            const props = Object.assign({}, info);
            delete props.DeadLetterReason;
            delete props.DeadLetterErrorDescription;
            broker.deadLetter(rec, info.DeadLetterReason, info.DeadLetterErrorDescription, props);
            finish(delivery, outcome.rejected().described());
            break;
        }
        }
        broker.pump(entity);
    }
    for (const kind of ['accepted', 'released', 'modified', 'rejected']) {
        container.on(kind, (ctx) => settle(ctx, kind));
    }

    function pumpFor(sender) {
        if (sender.sb && sender.sb.kind === 'entity') broker.pump(sender.sb.entity);
    }
    container.on('sender_flow', (ctx) => pumpFor(ctx.sender));
    container.on('sender_draining', (ctx) => {
        pumpFor(ctx.sender);
        ctx.sender.set_drained(true);
    });

    function forget(link) {
        const sb = link.sb;
        if (!sb || sb.gone) return;
        sb.gone = true;
        if (sb.kind === 'entity' && sb.receiver) broker.detach(sb.entity, sb.receiver);
        if (sb.kind === 'reply' && replyLinks.get(sb.replyTo) === link) replyLinks.delete(sb.replyTo);
    }
    function forgetSession(session) {
        for (const name of Object.keys(session.links)) forget(session.links[name]);
    }
    function forgetConnection(connection) {
        for (const session of Object.values(connection.local_channel_map || {})) forgetSession(session);
        for (const session of Object.values(connection.remote_channel_map || {})) forgetSession(session);
    }
    container.on('sender_close', (ctx) => forget(ctx.sender));
    container.on('receiver_close', (ctx) => forget(ctx.receiver));
    container.on('session_close', (ctx) => forgetSession(ctx.session));
    container.on('connection_close', (ctx) => forgetConnection(ctx.connection));
    container.on('disconnected', (ctx) => forgetConnection(ctx.connection));
    for (const ev of ['sender_error', 'receiver_error', 'session_error', 'connection_error', 'protocol_error', 'error']) {
        container.on(ev, (ctx) => log(verbose, ev, ctx && (ctx.error || (ctx.connection && ctx.connection.error) || ctx)));
    }

    return container.listen({
        host: options.host,
        port: options.port,
        autoaccept: false,
        autosettle: false,
        treat_modified_as_released: false,
        tcp_no_delay: true, // replies are small frames: Nagle would hold them back
    });
}

module.exports = { start };
