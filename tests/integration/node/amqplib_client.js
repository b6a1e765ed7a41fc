// Scenarios run with amqplib (Node.js) against a broker:
//   node amqplib_client.js PORT SCENARIO
// Each scenario asserts what amqplib's users rely on and exits 0, or prints
// the failure and exits 1. test_amqplib.py runs each one as a test case.
'use strict';

const assert = require('node:assert/strict');
const amqp = require('amqplib');

const port = Number(process.argv[2]);
const scenario = process.argv[3];
const url = `amqp://guest:guest@127.0.0.1:${port}?heartbeat=10`;
const uniq = (stem) => `amqplib-${stem}-${Math.random().toString(16).slice(2, 10)}`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Wait for cond() (polling); the bound is generous and only reached when
// the broker misbehaves, so a busy machine does not fail the scenario.
async function waitFor(cond, what, ms = 30000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// The next message from a consumer, or a rejection after ms.
function nextMessage(ch, queue, opts, ms = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${queue}`)), ms);
    ch.consume(queue, (msg) => {
      clearTimeout(timer);
      resolve(msg);
    }, opts).catch(reject);
  });
}

async function getWithin(ch, queue, ms = 30000, noAck = true) {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = await ch.get(queue, { noAck });
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`nothing arrived in ${queue}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const scenarios = {
  // Publish with properties and headers, consume, ack: everything arrives
  // as sent (amqplib decodes typed header values).
  async roundTrip(conn) {
    const ch = await conn.createChannel();
    const q = (await ch.assertQueue('', { exclusive: true })).queue;
    const headers = { str: 'x', int: 42, neg: -7, bool: true, list: [1, 'a'],
      nested: { k: 'v' } };
    ch.sendToQueue(q, Buffer.from('hello amqplib'), {
      contentType: 'text/plain', correlationId: 'c-1', replyTo: 'r', messageId: 'm-1',
      priority: 3, persistent: true, timestamp: 1700000000, type: 't', appId: 'a',
      headers,
    });
    const msg = await nextMessage(ch, q, { noAck: false });
    assert.equal(msg.content.toString(), 'hello amqplib');
    const p = msg.properties;
    assert.equal(p.contentType, 'text/plain');
    assert.equal(p.correlationId, 'c-1');
    assert.equal(p.replyTo, 'r');
    assert.equal(p.messageId, 'm-1');
    assert.equal(p.priority, 3);
    assert.equal(p.deliveryMode, 2);
    assert.equal(p.timestamp, 1700000000);
    assert.deepEqual(p.headers, headers);
    assert.equal(msg.fields.redelivered, false);
    assert.equal(msg.fields.routingKey, q);
    ch.ack(msg);
    await ch.close();
  },

  // A confirm channel: every publish is confirmed (waitForConfirms), and a
  // confirmed message is in the queue.
  async confirms(conn) {
    const ch = await conn.createConfirmChannel();
    const q = (await ch.assertQueue('', { exclusive: true })).queue;
    const acked = [];
    for (let i = 0; i < 500; i++) {
      ch.sendToQueue(q, Buffer.from(`m${i}`), {}, (err) => acked.push(err));
    }
    await ch.waitForConfirms();
    assert.equal(acked.length, 500);
    assert.ok(acked.every((e) => e === null || e === undefined));
    const ok = await ch.checkQueue(q);
    assert.equal(ok.messageCount, 500);
    await ch.close();
  },

  // Topic routing through assertExchange/bindQueue, then unbindQueue.
  async topicRouting(conn) {
    const ch = await conn.createChannel();
    const x = uniq('topic');
    await ch.assertExchange(x, 'topic', { durable: false, autoDelete: false });
    const qa = (await ch.assertQueue('', { exclusive: true })).queue;
    const qb = (await ch.assertQueue('', { exclusive: true })).queue;
    await ch.bindQueue(qa, x, 'stock.*.nyse');
    await ch.bindQueue(qb, x, 'stock.#');
    ch.publish(x, 'stock.ibm.nyse', Buffer.from('1'));
    ch.publish(x, 'stock.ibm.lse.late', Buffer.from('2'));
    assert.equal((await getWithin(ch, qa)).content.toString(), '1');
    const got = [(await getWithin(ch, qb)).content.toString(),
      (await getWithin(ch, qb)).content.toString()];
    assert.deepEqual(got.sort(), ['1', '2']);
    await ch.unbindQueue(qb, x, 'stock.#');
    ch.publish(x, 'stock.x.nyse', Buffer.from('3'));
    assert.equal((await getWithin(ch, qa)).content.toString(), '3');
    assert.equal(await ch.get(qb), false);
    await ch.deleteExchange(x);
    await ch.close();
  },

  // prefetch(2): only two unacked deliveries at a time; acking frees one.
  async prefetch(conn) {
    const ch = await conn.createChannel();
    const q = (await ch.assertQueue('', { exclusive: true })).queue;
    for (let i = 0; i < 5; i++) ch.sendToQueue(q, Buffer.from(`${i}`));
    await ch.prefetch(2);
    const got = [];
    await ch.consume(q, (m) => got.push(m), { noAck: false });
    // wait for what prefetch allows, then a little longer: a delivery
    // beyond the limit would show up
    await waitFor(() => got.length >= 2, 'the first 2 deliveries');
    await sleep(200);
    assert.equal(got.length, 2);
    ch.ack(got[0]);
    await waitFor(() => got.length >= 3, 'a 3rd delivery after one ack');
    await sleep(200);
    assert.equal(got.length, 3);
    ch.ackAll();
    await waitFor(() => got.length >= 5, 'the rest after ackAll');
    await sleep(200);
    assert.equal(got.length, 5);
    assert.deepEqual(got.map((m) => m.content.toString()), ['0', '1', '2', '3', '4']);
    ch.ackAll();
    await ch.close();
  },

  // nack without requeue goes to the dead-letter exchange with x-death.
  async deadLetter(conn) {
    const ch = await conn.createChannel();
    const dlx = uniq('dlx');
    await ch.assertExchange(dlx, 'fanout', { durable: false });
    const dlq = (await ch.assertQueue('', { exclusive: true })).queue;
    await ch.bindQueue(dlq, dlx, '');
    const q = (await ch.assertQueue('', { exclusive: true,
      arguments: { 'x-dead-letter-exchange': dlx } })).queue;
    ch.sendToQueue(q, Buffer.from('bad'));
    const m = await getWithin(ch, q, 30000, false);
    ch.nack(m, false, false);
    const dead = await getWithin(ch, dlq);
    assert.equal(dead.content.toString(), 'bad');
    const death = dead.properties.headers['x-death'];
    assert.equal(death.length, 1);
    assert.equal(death[0].reason, 'rejected');
    assert.equal(death[0].queue, q);
    assert.equal(death[0].count, 1);
    await ch.deleteExchange(dlx);
    await ch.close();
  },

  // A missing queue: checkQueue rejects with a 404 channel error, the
  // channel closes, the connection lives on.
  async channelError(conn) {
    const ch = await conn.createChannel();
    const closed = new Promise((resolve) => ch.on('close', resolve));
    ch.on('error', () => {});
    await assert.rejects(ch.checkQueue(uniq('missing')), (err) => {
      assert.equal(err.code, 404);
      assert.match(err.message, /NOT_FOUND - no queue/);
      return true;
    });
    await closed;
    const ch2 = await conn.createChannel();
    await ch2.assertQueue('', { exclusive: true });
    await ch2.close();
  },

  // basic.cancel from the server when the queue is deleted: amqplib calls
  // the consumer with null.
  async serverCancel(conn) {
    const ch = await conn.createChannel();
    const other = await conn.createChannel();
    const q = uniq('cancel');
    await ch.assertQueue(q, { exclusive: false, autoDelete: false });
    const got = [];
    let cancelled = false;
    // consume-ok is awaited: the consumer exists before the queue goes
    const { consumerTag } = await ch.consume(q, (m) => {
      if (m === null) cancelled = true; else got.push(m);
    });
    other.sendToQueue(q, Buffer.from('before'));
    await waitFor(() => got.length === 1, 'a delivery before the delete');
    assert.equal(got[0].content.toString(), 'before');
    assert.equal(got[0].fields.consumerTag, consumerTag);
    await other.deleteQueue(q);
    await waitFor(() => cancelled, 'basic.cancel from the server');
    assert.equal(got.length, 1);
    await ch.close();
    await other.close();
  },

  // Direct reply-to: an RPC round trip on amq.rabbitmq.reply-to.
  async directReplyTo(conn) {
    const server = await conn.createChannel();
    const client = await conn.createChannel();
    const rpcq = (await server.assertQueue('', { exclusive: true })).queue;
    await server.consume(rpcq, (m) => {
      server.sendToQueue(m.properties.replyTo, Buffer.from(`re:${m.content}`),
        { correlationId: m.properties.correlationId });
      server.ack(m);
    });
    let gotReply;
    const reply = new Promise((resolve) => { gotReply = resolve; });
    await client.consume('amq.rabbitmq.reply-to', (m) => gotReply(m), { noAck: true });
    client.sendToQueue(rpcq, Buffer.from('ping'),
      { replyTo: 'amq.rabbitmq.reply-to', correlationId: 'k1' });
    const m = await Promise.race([reply, sleep(30000).then(() => {
      throw new Error('no reply within 30 s');
    })]);
    assert.equal(m.content.toString(), 're:ping');
    assert.equal(m.properties.correlationId, 'k1');
    await client.close();
    await server.close();
  },
};

async function main() {
  const fn = scenarios[scenario];
  if (!fn) throw new Error(`unknown scenario ${scenario}`);
  const conn = await amqp.connect(url);
  conn.on('error', (e) => { console.error('connection error:', e.message); });
  try {
    await fn(conn);
  } finally {
    await conn.close();
  }
}

main().then(() => { console.log(`ok ${scenario}`); process.exit(0); },
  (e) => { console.error(`FAIL ${scenario}:`, e && e.stack ? e.stack : e); process.exit(1); });
