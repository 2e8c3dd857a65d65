import { join } from 'node:path';
import {
  demoLikeConfig,
  freePort,
  makeTempDir,
  startTestNode,
  type TestNode,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/**
 * A node for the command line to operate on: the demo-like config on a fixed SMTP port (so
 * send-test finds it from the config alone), an admin API on a fixed loopback port (so the CLI
 * finds it from `admin.listen`), an anonymous relay connector, and a smart host that refuses
 * connections, so mail for other domains waits in a Retry queue.
 */
export interface CliNode {
  readonly node: TestNode;
  /** The node's config file: what `--config` points at. */
  readonly configFile: string;
  readonly adminPort: number;
  readonly smtpPort: number;
  readonly relayPort: number;
  readonly tokenFile: string;
  stop(): Promise<void>;
}

/** `beforeStart` gets the node's dataDir to leave state in before the node opens it (a crashed queue). */
export async function startCliNode(
  options: { beforeStart?: (dataDir: string) => Promise<void> } = {},
): Promise<CliNode> {
  const dir = await makeTempDir('ferrymail-cli-node-');
  const [smtpPort, adminPort, deadSmartHost] = [await freePort(), await freePort(), await freePort()];
  const base = await demoLikeConfig(dir, { default: smtpPort });
  const config = {
    ...base,
    receiveConnectors: [
      ...base.receiveConnectors,
      { name: 'Relay', bindings: ['127.0.0.1:0'], permissionGroups: { anonymous: ['submit', 'relay'] } },
    ],
    sendConnectors: [
      {
        name: 'Outbound',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${deadSmartHost}`] },
      },
    ],
    // No DNS lookups for SPF and DMARC from a test machine.
    emailAuthentication: { enabled: false },
    admin: { listen: [`127.0.0.1:${adminPort}`], accounts: [] },
  };
  await options.beforeStart?.(base.node.dataDir);
  const node = await startTestNode({ dir, config });
  let stopped: Promise<void> | undefined;
  return {
    node,
    configFile: join(dir, 'ferrymail.yaml'),
    adminPort,
    smtpPort,
    relayPort: node.port('Relay'),
    tokenFile: join(node.node.dataDir, 'admin', 'token'),
    stop: () => {
      stopped ??= node.stop();
      return stopped;
    },
  };
}

/** Sends one message over SMTP and returns its queue id from the 250 reply. */
export async function sendMessage(
  port: number,
  o: { from: string; to: ReadonlyArray<string>; subject: string; messageId?: string; body?: string },
): Promise<string> {
  const client = await SmtpTestClient.connect(port);
  try {
    await client.greeting();
    await client.command('EHLO client.test');
    expect(await client.command(`MAIL FROM:<${o.from}>`), 250, 'MAIL');
    for (const to of o.to) expect(await client.command(`RCPT TO:<${to}>`), 250, `RCPT ${to}`);
    expect(await client.command('DATA'), 354, 'DATA');
    const headers = [
      `From: <${o.from}>`,
      `To: ${o.to.map((t) => `<${t}>`).join(', ')}`,
      `Subject: ${o.subject}`,
      `Message-ID: ${o.messageId ?? `<${o.subject.replace(/\W+/g, '.')}@client.test>`}`,
    ];
    const reply = await client.command(`${headers.join('\r\n')}\r\n\r\n${o.body ?? 'Hello.'}\r\n.`);
    expect(reply, 250, 'end of data');
    const id = /queued as (\S+)/.exec(reply.text)?.[1];
    if (!id) throw new Error(`no queue id in ${reply.text}`);
    await client.command('QUIT');
    return id;
  } finally {
    client.close();
  }
}

function expect(reply: { code: number; text: string }, code: number, what: string): void {
  if (reply.code !== code) throw new Error(`${what}: expected ${code}, got ${reply.code} ${reply.text}`);
}
