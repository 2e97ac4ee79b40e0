#!/usr/bin/env node
// TEST INFRASTRUCTURE ONLY. Not part of dvrouter and never deployed.
//
// Service Bus stand-in: a small AMQP 1.0 broker that the real azservicebus Go SDK can talk
// to over plain TCP, so dvrouter's tests exercise the SDK over a real socket. The official
// Service Bus emulator needs Docker, which the test machines do not have. What the SDK needs
// from a broker, and what the stand-in does and does not do, is in README.md here.
//
// It prints one JSON line on stdout once both ports listen: {"amqp":PORT,"http":PORT}.
// The HTTP port is a side channel for tests: GET /messages?entity=NAME lists every message
// ever sent to an entity, with its state, so tests can assert what arrived without racing
// a receiver.
'use strict';

const fs = require('fs');
const http = require('http');
const { Broker } = require('./broker.js');
const amqp = require('./amqp.js');

const USAGE = `usage: node main.js [flags]
  --host ADDR               listen address (default 127.0.0.1)
  --port N                  AMQP port, 0 picks a free one (default 0)
  --http-port N             side-channel HTTP port, 0 picks a free one (default 0)
  --entities LIST           comma-separated queues and subscriptions to create:
                            "orders,events/subscriptions/audit" makes queue orders and topic
                            events with subscription audit
  --topics LIST             comma-separated topics to create without subscriptions
  --auto-create             create a queue (or topic/subscriptions/x) on first attach
                            instead of answering amqp:not-found
  --lock-duration D         PeekLock lock duration, e.g. 500ms, 30s (default 60s, as Azure)
  --max-delivery-count N    deliveries before dead-lettering (default 10, as Azure)
  --max-message-size N      bytes, advertised on sender links (default 262144, Standard tier)
  --duplicate-detection LIST
                            comma-separated queues and topics that drop a message whose
                            MessageId was enqueued within the window (requiresDuplicateDetection)
  --duplicate-detection-window D
                            duplicate detection history window (default 10m, as Azure)
  --state FILE              load messages from FILE at start if it exists; save them there on
                            SIGTERM or SIGINT, so a restart keeps them
  --exit-with-stdin         exit when stdin closes (the Go test helper holds it open)
  --verbose                 log refused links and errors to stderr`;

function duration(text) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(text));
    if (!m) throw new Error('bad duration ' + JSON.stringify(text));
    const n = Number(m[1]);
    return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60000 : n * 1000;
}

function integer(text, name) {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) throw new Error(name + ': not a whole number: ' + JSON.stringify(text));
    return n;
}

function parseArgs(argv) {
    const o = {
        host: '127.0.0.1', port: 0, httpPort: 0, entities: [], topics: [], autoCreate: false,
        lockDurationMs: 60000, maxDeliveryCount: 10, maxMessageSize: 262144, state: '', exitWithStdin: false, verbose: false,
        duplicateDetection: [], duplicateWindowMs: 600000,
    };
    const list = (v) => String(v).split(',').map((s) => s.trim()).filter(Boolean);
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) throw new Error(flag + ' needs a value');
            return argv[++i];
        };
        switch (flag) {
        case '--host': o.host = value(); break;
        case '--port': o.port = integer(value(), flag); break;
        case '--http-port': o.httpPort = integer(value(), flag); break;
        case '--entities': o.entities.push(...list(value())); break;
        case '--topics': o.topics.push(...list(value())); break;
        case '--auto-create': o.autoCreate = true; break;
        case '--lock-duration': o.lockDurationMs = duration(value()); break;
        case '--max-delivery-count': o.maxDeliveryCount = integer(value(), flag); break;
        case '--max-message-size': o.maxMessageSize = integer(value(), flag); break;
        case '--duplicate-detection': o.duplicateDetection.push(...list(value())); break;
        case '--duplicate-detection-window': o.duplicateWindowMs = duration(value()); break;
        case '--state': o.state = value(); break;
        case '--exit-with-stdin': o.exitWithStdin = true; break;
        case '--verbose': o.verbose = true; break;
        case '-h': case '--help': console.log(USAGE); process.exit(0); break;
        default: throw new Error('unknown flag ' + flag + '\n' + USAGE);
        }
    }
    if (o.maxDeliveryCount < 1) throw new Error('--max-delivery-count must be at least 1');
    if (o.maxMessageSize < 1) throw new Error('--max-message-size must be at least 1');
    if (o.duplicateWindowMs <= 0) throw new Error('--duplicate-detection-window must be above 0');
    return o;
}

function sideChannel(broker) {
    return http.createServer((req, res) => {
        const url = new URL(req.url, 'http://standin');
        const send = (status, body) => {
            res.writeHead(status, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify(body));
        };
        try {
            if (req.method === 'GET' && url.pathname === '/messages') {
                const name = url.searchParams.get('entity') || '';
                const e = broker.lookup(name, false);
                if (!e) {
                    send(404, { error: 'no entity ' + JSON.stringify(name), entities: broker.list().map((x) => x.name) });
                    return;
                }
                send(200, { entity: e.name, kind: e.kind, messages: e.log.map((r) => broker.view(r)) });
            } else if (req.method === 'GET' && url.pathname === '/entities') {
                send(200, broker.list());
            } else if (req.method === 'POST' && url.pathname === '/entities') {
                const name = url.searchParams.get('name') || '';
                const e = url.searchParams.get('kind') === 'topic' ? broker.defineTopic(name) : broker.define(name);
                send(201, { name: e.name, kind: e.kind });
            } else {
                send(404, { error: 'use GET /messages?entity=NAME, GET /entities or POST /entities?name=NAME[&kind=topic]' });
            }
        } catch (err) {
            send(400, { error: String(err.message) });
        }
    });
}

function listening(server) {
    return new Promise((resolve, reject) => {
        if (server.listening) {
            resolve(server.address().port);
            return;
        }
        server.once('listening', () => resolve(server.address().port));
        server.once('error', reject);
    });
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    const broker = new Broker(options);
    for (const t of options.topics) broker.defineTopic(t);
    for (const e of options.entities) broker.define(e);
    for (const e of options.duplicateDetection) broker.requireDuplicateDetection(e);
    if (options.state && fs.existsSync(options.state)) {
        broker.restore(JSON.parse(fs.readFileSync(options.state, 'utf8')));
    }

    const amqpServer = amqp.start(broker, options);
    const httpServer = sideChannel(broker);
    httpServer.listen({ host: options.host, port: options.httpPort });
    const [amqpPort, httpPort] = await Promise.all([listening(amqpServer), listening(httpServer)]);

    const stop = () => {
        if (options.state) fs.writeFileSync(options.state, JSON.stringify(broker.snapshot()));
        process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    if (options.exitWithStdin) {
        // Exit with the test process that started us, even if it died before killing us.
        process.stdin.on('end', stop);
        process.stdin.on('error', stop);
        process.stdin.resume();
    }

    process.stdout.write(JSON.stringify({ amqp: amqpPort, http: httpPort }) + '\n');
}

main().catch((err) => {
    console.error('servicebus-standin:', err.message);
    process.exit(2);
});
