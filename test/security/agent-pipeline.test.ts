import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Agent, AgentEventName } from '../../src/agents/types.ts';
import { CONTINUE, rejectWith, tarpit } from '../../src/agents/types.ts';
import { reply } from '../../src/smtp/reply.ts';
import { waitForMessages } from '../helpers/node-fixture.ts';
import { connector, startReceiveHarness, TEST_PASSWORD, withoutTrace } from '../helpers/receive-fakes.ts';
import type { SmtpTestClient } from '../helpers/smtp-client.ts';
import { connect, data, ready, startSecuredNode } from './security-fixture.ts';

/**
 * The agent pipeline: agents run in order at each SMTP stage; the first refusal ends the event
 * and is the reply; a tarpit delays the reply; header directives edit the stored header section;
 * an agent that throws is logged and skipped (or, failing closed, refuses with 451 4.7.0), and
 * never breaks the session.
 */

const MESSAGE = 'From: someone@elsewhere.test\r\nX-Drop-Me: please\r\nSubject: hi\r\n\r\nBody.';

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'error' }, stream), lines };
}

/** One whole transaction; returns each reply code and the last reply. */
async function transaction(client: SmtpTestClient) {
  const mail = await client.command('MAIL FROM:<someone@elsewhere.test>');
  const rcpt = await client.command('RCPT TO:<alice@example.test>');
  if (mail.code !== 250 || rcpt.code !== 250) return { mail, rcpt };
  return { mail, rcpt, end: await data(client, MESSAGE) };
}

describe('agent pipeline', () => {
  it('logs an agent that throws and goes on as if it had continued: the message is stored', async () => {
    const { logger, lines } = capturingLogger();
    const broken: Agent = {
      name: 'broken',
      rcpt() {
        throw new Error('agent bug');
      },
      endOfHeaders: async () => {
        throw new Error('async agent bug');
      },
    };
    const harness = await startReceiveHarness([connector()], { agents: [broken], logger });
    try {
      const client = await ready(harness.port());
      const { rcpt, end } = await transaction(client);
      assert.equal(rcpt.code, 250);
      assert.equal(end?.code, 250);
      assert.equal((await client.command('NOOP')).code, 250, 'the session must go on');
      client.close();
      assert.equal((await harness.messages()).length, 1);
      const failures = lines.filter((l) => l.msg === 'agent failed');
      assert.deepEqual(
        failures.map((l) => [l.agent, l.event]),
        [
          ['broken', 'rcpt'],
          ['broken', 'endOfHeaders'],
        ],
      );
    } finally {
      await harness.close();
    }
  });

  it('refuses with 451 4.7.0 when an agent throws and agents fail closed, storing nothing', async () => {
    const broken: Agent = {
      name: 'broken',
      mail() {
        throw new Error('agent bug');
      },
    };
    const { logger } = capturingLogger();
    const harness = await startReceiveHarness([connector()], { agents: [broken], failClosed: true, logger });
    try {
      const client = await ready(harness.port());
      const mail = await client.command('MAIL FROM:<someone@elsewhere.test>');
      assert.equal(mail.code, 451);
      assert.match(mail.text, /^4\.7\.0 /);
      assert.equal((await client.command('NOOP')).code, 250);
      client.close();
      assert.equal((await harness.messages()).length, 0);
    } finally {
      await harness.close();
    }
  });

  it('runs agents in their order and stops an event at the first refusal', async () => {
    const calls: string[] = [];
    const recorder = (name: string, refuseAt?: AgentEventName): Agent => {
      const handler = (event: AgentEventName) => () => {
        calls.push(`${name}:${event}`);
        return event === refuseAt ? rejectWith(reply(550, '5.7.1', `${name} says no`)) : CONTINUE;
      };
      return {
        name,
        connect: handler('connect'),
        helo: handler('helo'),
        mail: handler('mail'),
        rcpt: handler('rcpt'),
      };
    };
    const harness = await startReceiveHarness([connector()], {
      agents: [recorder('first'), recorder('second', 'rcpt'), recorder('third')],
    });
    try {
      const client = await ready(harness.port());
      const { mail, rcpt } = await transaction(client);
      assert.equal(mail.code, 250);
      assert.equal(rcpt.code, 550);
      assert.equal(rcpt.text, '5.7.1 second says no');
      client.close();
      assert.deepEqual(calls, [
        'first:connect',
        'second:connect',
        'third:connect',
        'first:helo',
        'second:helo',
        'third:helo',
        'first:mail',
        'second:mail',
        'third:mail',
        'first:rcpt',
        'second:rcpt',
      ]);
    } finally {
      await harness.close();
    }
  });

  const stages: Array<{ stage: AgentEventName; check: (client: SmtpTestClient) => Promise<void> }> = [
    {
      stage: 'helo',
      async check(client) {
        const r = await client.command('EHLO client.example.net');
        assert.equal(r.code, 554);
        // HELO was refused: MAIL is out of sequence.
        assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 503);
      },
    },
    {
      stage: 'mail',
      async check(client) {
        await client.command('EHLO client.example.net');
        assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 554);
        assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 503);
      },
    },
    {
      stage: 'rcpt',
      async check(client) {
        await client.command('EHLO client.example.net');
        const { rcpt } = await transaction(client);
        assert.equal(rcpt.code, 554);
        assert.equal((await client.command('DATA')).code, 554, 'DATA without a recipient');
      },
    },
    {
      stage: 'endOfHeaders',
      async check(client) {
        await client.command('EHLO client.example.net');
        const { end } = await transaction(client);
        assert.equal(end?.code, 554);
      },
    },
    {
      stage: 'endOfData',
      async check(client) {
        await client.command('EHLO client.example.net');
        const { end } = await transaction(client);
        assert.equal(end?.code, 554);
      },
    },
  ];
  for (const { stage, check } of stages) {
    it(`refuses at ${stage} with the agent's reply and stores nothing`, async () => {
      const agent: Agent = {
        name: 'refuser',
        [stage]: () => rejectWith(reply(554, '5.7.1', `no at ${stage}`)),
      };
      const harness = await startReceiveHarness([connector()], { agents: [agent] });
      try {
        const { client, greeting } = await connect(harness.port());
        assert.equal(greeting.code, 220);
        await check(client);
        assert.equal((await client.command('NOOP')).code, 250, 'the session goes on after a refusal');
        client.close();
        assert.equal((await harness.messages()).length, 0);
        assert.equal(harness.sink.openBodies, 0, 'a refused message left a body open');
      } finally {
        await harness.close();
      }
    });
  }

  it('refuses at connect with the reply as greeting, then closes the connection', async () => {
    const agent: Agent = { name: 'refuser', connect: () => rejectWith(reply(554, '5.7.1', 'go away')) };
    const harness = await startReceiveHarness([connector()], { agents: [agent] });
    try {
      const { client, greeting } = await connect(harness.port());
      assert.equal(greeting.code, 554);
      assert.equal(greeting.text, '5.7.1 go away');
      await client.closed();
      assert.equal((await harness.messages()).length, 0);
    } finally {
      await harness.close();
    }
  });

  it('refuses a login at auth: the session stays unauthenticated', async () => {
    const users: string[] = [];
    const agent: Agent = {
      name: 'noBob',
      auth: ({ user }) => {
        users.push(user);
        return user === 'bob@example.test' ? rejectWith(reply(535, '5.7.8', 'bob may not log in')) : CONTINUE;
      },
    };
    const submission = connector({
      permissionGroups: { authenticatedUsers: ['submit'] },
      auth: { mechanisms: ['PLAIN'], requireTls: false, required: true },
    });
    const harness = await startReceiveHarness([submission], { agents: [agent] });
    try {
      const client = await ready(harness.port());
      const login = (user: string) =>
        `AUTH PLAIN ${Buffer.from(`\0${user}\0${TEST_PASSWORD}`).toString('base64')}`;
      const refused = await client.command(login('bob@example.test'));
      assert.equal(refused.code, 535);
      assert.equal(refused.text, '5.7.8 bob may not log in');
      assert.equal((await client.command('MAIL FROM:<bob@example.test>')).code, 530, 'bob got in anyway');
      assert.equal((await client.command(login('alice@example.test'))).code, 235);
      assert.equal((await client.command('MAIL FROM:<alice@example.test>')).code, 250);
      assert.deepEqual(users, ['bob@example.test', 'alice@example.test']);
      client.close();
    } finally {
      await harness.close();
    }
  });

  it('closes the connection after a refusal that asks to disconnect', async () => {
    const agent: Agent = {
      name: 'refuser',
      mail: () => rejectWith(reply(421, '4.7.0', 'closing'), { disconnect: true }),
    };
    const harness = await startReceiveHarness([connector()], { agents: [agent] });
    try {
      const client = await ready(harness.port());
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 421);
      await client.closed();
    } finally {
      await harness.close();
    }
  });

  it('delays the reply by the longest tarpit asked for, and goes on', async () => {
    const agents: Agent[] = [
      { name: 'slow', mail: () => tarpit(150) },
      { name: 'slower', mail: () => tarpit(300) },
    ];
    const harness = await startReceiveHarness([connector()], { agents });
    try {
      const client = await ready(harness.port());
      const started = Date.now();
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      const ms = Date.now() - started;
      assert.ok(ms >= 280 && ms < 440, `MAIL took ${ms} ms`);
      client.close();
    } finally {
      await harness.close();
    }
  });

  it('applies header directives from every agent: added fields go first, removed ones are not stored', async () => {
    const seen: string[] = [];
    const agents: Agent[] = [
      {
        name: 'adder',
        endOfHeaders: ({ headers }) => {
          seen.push(headers.toString('latin1'));
          return { action: 'editHeaders', addHeaders: ['X-Scanned: yes'] };
        },
      },
      {
        name: 'remover',
        endOfHeaders: () => ({
          action: 'editHeaders',
          addHeaders: ['X-Second: also'],
          removeHeaders: [{ name: 'x-drop-me' }],
        }),
      },
    ];
    const harness = await startReceiveHarness([connector()], { agents });
    try {
      const client = await ready(harness.port());
      const { end } = await transaction(client);
      assert.equal(end?.code, 250);
      client.close();
      const [submitted] = await harness.messages();
      const stored = withoutTrace(await harness.body(submitted!.id));
      assert.equal(
        stored,
        'X-Scanned: yes\r\nX-Second: also\r\nFrom: someone@elsewhere.test\r\nSubject: hi\r\n\r\nBody.\r\n',
      );
      assert.deepEqual(seen, ['From: someone@elsewhere.test\r\nX-Drop-Me: please\r\nSubject: hi\r\n\r\n']);
    } finally {
      await harness.close();
    }
  });

  it('gives the end-of-headers agents a message that has no body, and stores it edited', async () => {
    const agents: Agent[] = [
      {
        name: 'remover',
        endOfHeaders: () => ({ action: 'editHeaders', removeHeaders: [{ name: 'x-drop-me' }] }),
      },
    ];
    const harness = await startReceiveHarness([connector()], { agents });
    try {
      const client = await ready(harness.port());
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 250);
      assert.equal((await data(client, 'X-Drop-Me: please\r\nSubject: only headers')).code, 250);
      client.close();
      const [submitted] = await harness.messages();
      assert.equal(withoutTrace(await harness.body(submitted!.id)), 'Subject: only headers\r\n');
    } finally {
      await harness.close();
    }
  });

  it("runs a node's own agents after the built-in ones, and puts end-of-data fields on top of the stored message", async () => {
    const seen: string[] = [];
    const own: Agent[] = [
      {
        name: 'stamp',
        endOfHeaders: ({ headers }) => {
          // The built-in header firewall ran first: the forged trust header is already gone.
          seen.push(headers.toString('latin1'));
          return CONTINUE;
        },
        endOfData: ({ size }) => ({
          action: 'editHeaders',
          addHeaders: [`X-Stamp: ${size > 0 ? 'sized' : 'empty'}`],
        }),
      },
      // Removing headers once they are stored cannot be done: taken as an invalid verdict, skipped.
      {
        name: 'late',
        endOfData: () =>
          ({ action: 'editHeaders', addHeaders: [], removeHeaders: [{ name: 'subject' }] }) as never,
      },
    ];
    const node = await startSecuredNode({}, undefined, own);
    try {
      const client = await ready(node.port('Default'));
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      assert.equal((await client.command('RCPT TO:<bob@example.test>')).code, 250);
      const end = await data(client, 'X-Ferrymail-Trusted: yes\r\nSubject: stamped\r\n\r\nBody.');
      assert.equal(end.code, 250);
      client.close();
      const [stored] = await waitForMessages(node.mailbox('bob@example.test'), 1);
      const text = stored!.toString('latin1');
      assert.match(text, /^X-Stamp: sized$/m);
      assert.ok(text.indexOf('X-Stamp: sized') < text.indexOf('Received: '), 'end-of-data fields go on top');
      assert.match(text, /^Subject: stamped$/m);
      assert.deepEqual(seen, ['X-Ferrymail-Trusted: yes\r\nSubject: stamped\r\n\r\n']);
    } finally {
      await node.cleanup();
    }
  });
});
