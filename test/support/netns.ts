import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';

/**
 * A network "host" for the cluster's failure tests: a network namespace of its own, linked to the
 * root namespace by a veth pair in a private /30 of 10.231.0.0/16. A process started in it has its
 * own address, reaches the root namespace's side of the link (and every other address of the root
 * namespace: its default route points there; the root namespace forwards nothing further), and
 * is reached there by the root namespace. `cut()` takes the link down as a pulled cable would:
 * the processes live on, new connections fail and open ones hang.
 *
 * Names and addresses never collide between test files running at once: the namespace's name
 * carries the process id, and the /30 is claimed by creating the root side's interface, named
 * after its index, which the kernel refuses twice. Everything is removed by `remove()`, on the
 * test process's exit (a failed test, an uncaught exception), and, should the process have been
 * killed outright, by the next test process that creates a host.
 */
export interface NetworkHost {
  /** The namespace, as `ip netns` knows it. */
  readonly name: string;
  /** The host's own address, inside the namespace. */
  readonly address: string;
  /** The root namespace's side of the link: a server there listens on it for this host. */
  readonly rootAddress: string;
  /** The /30 of both, in CIDR notation (for an allow-list such as pg_hba). */
  readonly network: string;
  /** The root side's interface. */
  readonly rootInterface: string;
  /** Runs a program inside the namespace (never through a shell); it dies with the test process. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Takes the host's link down; its processes keep running. */
  cut(): void;
  /** Brings the link back up, with its routes. */
  restore(): void;
  /** Ends every process inside, then deletes the link and the namespace. Safe to call twice. */
  remove(): Promise<void>;
}

const IP = '/usr/sbin/ip';
const PREFIX = 'disk2iso-host-';
/** 10.231.0.0/16 holds 16,384 networks of 4 addresses. */
const SUBNETS = 16_384;
const ROOT_INTERFACE = /^d2i\d+$/;
/** The host's side, alone in its namespace. */
const HOST_INTERFACE = 'eth0';

function ip(args: readonly string[]): { ok: boolean; stdout: string; stderr: string } {
  const result = spawnSync(IP, args, { encoding: 'utf8' });
  if (result.error !== undefined) throw new Error(`${IP} could not run (Debian package iproute2): ${result.error.message}`);
  return { ok: result.status === 0, stdout: result.stdout, stderr: result.stderr };
}

function mustIp(args: readonly string[]): string {
  const result = ip(args);
  if (!result.ok) throw new Error(`ip ${args.join(' ')} failed: ${result.stderr.trim()}`);
  return result.stdout;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The process id a name of this harness carries, if it is one. */
function ownerOf(name: string | undefined): number | undefined {
  const match = /^disk2iso-host-(\d+)-/.exec(name ?? '');
  return match === null ? undefined : Number(match[1]);
}

function killInside(namespace: string): void {
  for (const pid of ip(['netns', 'pids', namespace])
    .stdout.split('\n')
    .filter((line) => line !== '')) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
}

/**
 * Removes the namespaces and links of test processes that were killed before they could, and
 * whatever still runs inside.
 */
function removeAbandoned(): void {
  const abandoned = (name: string | undefined) => {
    const owner = ownerOf(name);
    return owner !== undefined && owner !== process.pid && !isRunning(owner);
  };
  const links = JSON.parse(mustIp(['-j', 'link', 'show', 'type', 'veth']) || '[]') as Array<{ ifname: string; ifalias?: string }>;
  for (const link of links) if (ROOT_INTERFACE.test(link.ifname) && abandoned(link.ifalias)) ip(['link', 'del', link.ifname]);
  const namespaces = JSON.parse(mustIp(['-j', 'netns', 'list']) || '[]') as Array<{ name: string }>;
  for (const { name } of namespaces) {
    if (!abandoned(name)) continue;
    // Started by the dead test process, and missed by the parent-death signal if it died before
    // the signal was armed.
    killInside(name);
    ip(['netns', 'del', name]);
  }
}

function addressAt(index: number, offset: number): string {
  const value = index * 4 + offset;
  return `10.231.${Math.floor(value / 256)}.${value % 256}`;
}

/** Claims a free /30 by creating the link's root side (named after the index) with its peer inside `namespace`. */
function claimLink(namespace: string): number {
  // Test processes start at different places, so they rarely try the same index at once.
  const first = (process.pid * 131) % SUBNETS;
  for (let step = 0; step < SUBNETS; step++) {
    const index = (first + step) % SUBNETS;
    const created = ip(['link', 'add', `d2i${index}`, 'type', 'veth', 'peer', 'name', HOST_INTERFACE, 'netns', namespace]);
    if (created.ok) return index;
    if (!/File exists/.test(created.stderr)) throw new Error(`ip link add d2i${index} failed: ${created.stderr.trim()}`);
  }
  throw new Error('no free /30 left in 10.231.0.0/16');
}

export function createNetworkHost({ name }: { name: string }): NetworkHost {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new Error(`createNetworkHost: ${name} is not a short lower-case name`);
  removeAbandoned();
  const namespace = `${PREFIX}${process.pid}-${name}`;
  mustIp(['netns', 'add', namespace]);
  const children = new Set<ChildProcess>();
  let rootInterface: string | undefined;
  let removed = false;
  /** Synchronous, so that the exit handler can run it too. */
  const destroy = (): void => {
    removed = true;
    process.removeListener('exit', destroy);
    for (const child of children) child.kill('SIGKILL');
    // Processes the spawned ones started themselves.
    killInside(namespace);
    // Deleting the root side takes its peer with it at once; the namespace's own teardown, which
    // would take it too, runs later in the kernel.
    if (rootInterface !== undefined) ip(['link', 'del', rootInterface]);
    ip(['netns', 'del', namespace]);
  };
  process.once('exit', destroy);
  try {
    const index = claimLink(namespace);
    rootInterface = `d2i${index}`;
    const address = addressAt(index, 2);
    const rootAddress = addressAt(index, 1);
    mustIp(['link', 'set', rootInterface, 'alias', namespace]);
    mustIp(['addr', 'add', `${rootAddress}/30`, 'dev', rootInterface]);
    mustIp(['link', 'set', rootInterface, 'up']);
    const inside = (args: readonly string[]) => mustIp(['-n', namespace, ...args]);
    inside(['link', 'set', 'lo', 'up']);
    inside(['addr', 'add', `${address}/30`, 'dev', HOST_INTERFACE]);
    const restore = () => {
      inside(['link', 'set', HOST_INTERFACE, 'up']);
      // Taking the link down dropped the default route; the /30's own comes back with the link.
      inside(['route', 'replace', 'default', 'via', rootAddress]);
    };
    restore();
    return {
      name: namespace,
      address,
      rootAddress,
      network: `${addressAt(index, 0)}/30`,
      rootInterface,
      spawn(command, args, options = {}) {
        if (removed) throw new Error(`network host ${namespace} is removed`);
        // ip execs setpriv, setpriv execs the program: one process, whose parent-death signal
        // ends it with the test process, so it cannot keep the namespace alive.
        const child = spawn(IP, ['netns', 'exec', namespace, 'setpriv', '--pdeathsig', 'KILL', '--', command, ...args], { ...options, shell: false });
        children.add(child);
        child.once('exit', () => children.delete(child));
        return child;
      },
      cut() {
        // The host's side, not the root's: the root's route to the /30 stays (marked linkdown) and
        // swallows what the root namespace sends, instead of the default route carrying it off.
        inside(['link', 'set', HOST_INTERFACE, 'down']);
      },
      restore,
      async remove() {
        if (removed) return;
        const exits = [...children].filter((child) => child.exitCode === null && child.signalCode === null).map((child) => once(child, 'exit'));
        destroy();
        await Promise.all(exits);
      },
    };
  } catch (error) {
    destroy();
    throw error;
  }
}
