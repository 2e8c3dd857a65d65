import type { SendConnectorConfig } from '../../config/schema.ts';
import { readNamedFile } from '../../core/read-named-file.ts';

/** What each send connector needs from files, read once at start so a bad path fails the start. */
export interface ConnectorSecrets {
  password(connector: SendConnectorConfig): string | undefined;
  ca(connector: SendConnectorConfig): Buffer | undefined;
}

export async function loadConnectorSecrets(
  connectors: ReadonlyArray<SendConnectorConfig>,
): Promise<ConnectorSecrets> {
  const passwords = new Map<string, string>();
  const cas = new Map<string, Buffer>();
  for (const c of connectors) {
    if (c.auth.password !== undefined) passwords.set(c.name, c.auth.password);
    else if (c.auth.passwordFile !== undefined) {
      const text = (
        await readNamedFile(c.auth.passwordFile, `the password file of send connector ${c.name}`)
      ).toString('utf8');
      // One trailing line break is the file's, not the password's.
      passwords.set(c.name, text.replace(/\r?\n$/, ''));
    }
    if (c.tls.caFile !== undefined) {
      cas.set(c.name, await readNamedFile(c.tls.caFile, `the CA file of send connector ${c.name}`));
    }
  }
  return {
    password: (c) => passwords.get(c.name),
    ca: (c) => cas.get(c.name),
  };
}
