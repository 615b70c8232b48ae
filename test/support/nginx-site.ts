import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { packageRoot } from '../../src/config/load.js';
import { requireTool, run } from '../tools/exec.js';

/** The shipped site (deploy/nginx): TLS, the headers, the rate limit, everything passed on to `disk2iso_service`. */
export const NGINX_SITE = join(packageRoot(), 'deploy', 'nginx', 'disk2iso.conf');

/** The shipped upstream block for several web instances, which replaces the site's own. */
export const NGINX_CLUSTER_UPSTREAM = join(packageRoot(), 'deploy', 'nginx', 'disk2iso-cluster-upstream.conf');

export interface Certificates {
  /** The test CA's certificate, PEM. */
  ca: string;
  /** Files of the server certificate and its key. */
  cert: string;
  key: string;
}

/**
 * A test CA and a server certificate for 127.0.0.1 and ::1. The server key is RSA so that every
 * suite a test offers could be served with it: a refused one is refused by the site's cipher list.
 */
export async function makeCertificates(dir: string): Promise<Certificates> {
  const openssl = await requireTool('openssl', 'openssl');
  const file = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const caExtensions = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  await run(openssl, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=disk2iso test CA',
    ...caExtensions,
  ]);
  await run(openssl, ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost']);
  await writeFile(
    file('server.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n',
  );
  const signing = ['-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', file('server.ext')];
  await run(openssl, ['x509', '-req', '-in', file('server.csr'), ...signing, '-out', file('server.crt')]);
  return { ca: await readFile(file('ca.crt'), 'utf8'), cert: file('server.crt'), key: file('server.key') };
}

/**
 * A shipped file with its documented placeholders replaced, each of which must occur exactly as
 * often as expected: if the file changes, this throws instead of testing something else.
 */
export function renderShipped(name: string, text: string, replacements: Array<[placeholder: string, value: string, occurrences: number]>): string {
  let rendered = text;
  for (const [placeholder, value, occurrences] of replacements) {
    const found = rendered.split(placeholder).length - 1;
    if (found !== occurrences) throw new Error(`${placeholder} occurs ${found} times in ${name}, not ${occurrences}`);
    rendered = rendered.replaceAll(placeholder, value);
  }
  return rendered;
}

/** Whether a TLS server at 127.0.0.1:port completes a handshake with a certificate of the CA. */
export function acceptsTls(port: number, ca: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const probe = connectTls({ host: '127.0.0.1', port, ca }, () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
}
