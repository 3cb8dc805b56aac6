/**
 * Page transports with real CRIU through the REST API: stop-and-copy of a 64 MiB lab workload over plain
 * TCP, CRIU's mutual TLS (certificates issued by spotlift's CA and pushed over SSH), and SSH, in both of its
 * modes: node to node (OpenSSH -L on the source with a one-time key, host key pinned) and, for a pair whose
 * destination sshd the source cannot reach, relayed through the orchestrator's SSH connections. The
 * destination page-server listens on its loopback only, so nothing but the tunnel can reach it. Continuity
 * is checked as in migration.e2e-spec.ts. Then a TLS failure (a certificate for the wrong address): CRIU
 * aborts, the job rolls back, the workload runs once.
 */
import { readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { labAuthorizedKeys, nodeAddress, nodeOfPid, pidAlive } from '@spotlift/testing';
import { NodeCertificates, OpenSslCertificateAuthority, describeCertificate } from '@spotlift/transport';
import { type E2eEnv, procState, setupE2e } from './support/e2e-env.js';

let env: E2eEnv;
// The orchestrator's defaults (AppConfig): the CA on this host, node certificates per node id.
const CA_DIR = '/var/lib/spotlift/ca';
const TLS_DIR = '/var/lib/spotlift/tls';

beforeAll(async () => {
  env = await setupE2e({ nodes: 3, redisPort: 16385 });
}, 240_000);

afterAll(async () => {
  await env?.teardown();
}, 120_000);

/** The one-time tunnel keys spotlift put into the lab's authorized_keys and has not removed (none, ever, after a job). */
function tunnelKeysLeft(): string[] {
  return readFileSync(labAuthorizedKeys(), 'utf8')
    .split('\n')
    .filter((l) => l.includes('spotlift-tunnel-'));
}

/** Heartbeats continue from `to` only, gap-free, memory checks intact, from the restored pid. */
async function expectContinuedOn(name: string, m: MigrationRecord, to: string, before: number): Promise<void> {
  const after = Date.now();
  await env.collector.waitForCount(name, 5, { from: nodeAddress(to), since: after, timeoutMs: 15_000 });
  expect(env.collector.isSeqGapFree(name, before - 2_000)).toBe(true);
  expect(env.collector.anyNotOk(name)).toBe(false);
  expect(env.collector.onlyFromSince(name, nodeAddress(to), after)).toBe(true);
  expect(env.collector.last(name)!.pid).toBe(m.restoredPid);
}

describe('stop-and-copy over each page transport, real CRIU', () => {
  it.each([
    ['tcp', 'node-a', 'node-b'],
    ['tls', 'node-a', 'node-b'],
    ['ssh', 'node-a', 'node-c'],
  ] as const)(
    '%s: moves a 64 MiB workload %s -> %s; it continues there and only there',
    async (transport, from, to) => {
      const name = `tr-${transport}`;
      const { pid, workload } = await env.launch(name, from);
      const before = Date.now();
      const m = await env.migrate({ workload: workload.id, destination: to, transport });

      expect(m.error).toBeUndefined();
      expect(m.state).toBe('completed');
      expect(m.transport).toBe(transport);
      expect(m.criu.dump?.pagesWritten).toBeGreaterThanOrEqual(16_384);
      expect(m.bytes.pages).toBe(m.criu.dump!.pagesWritten * 4096);
      expect(m.bytes.images).toBeGreaterThan(0);
      expect(m.throughput?.pagesBytesPerSec).toBeGreaterThan(0);
      expect(m.throughput?.imagesBytesPerSec).toBeGreaterThan(0);
      // Nothing relayed by the orchestrator: ssh went node to node here (the relay has its own case below).
      expect(m.bytes.relayed).toBeUndefined();
      if (transport === 'ssh') {
        expect(m.transportRoute).toBe(
          `direct: OpenSSH -L on ${from} to ${to}'s sshd at ${nodeAddress(to)}:22, one-time key`,
        );
        expect(tunnelKeysLeft()).toEqual([]);
      } else {
        expect(m.transportRoute).toBeUndefined();
      }

      expect(pidAlive(pid)).toBe(false);
      expect(nodeOfPid(m.restoredPid!)).toBe(to);
      await expectContinuedOn(name, m, to, before);
      const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
      expect(w.body).toMatchObject({ nodeId: to, pid: m.restoredPid, state: 'running' });

      if (transport === 'tls') {
        // Each node holds its own certificate for its data address, key and cert 0600, from our CA.
        for (const node of [from, to]) {
          const gen = `${TLS_DIR}/${node}/${readlinkSync(`${TLS_DIR}/${node}/current`)}`;
          const facts = describeCertificate(readFileSync(`${gen}/cert.pem`, 'utf8'));
          expect(facts.ipAddresses).toEqual([nodeAddress(node)]);
          expect(facts.issuedBy(readFileSync(`${CA_DIR}/ca.pem`, 'utf8'))).toBe(true);
          expect(statSync(`${gen}/key.pem`).mode & 0o777).toBe(0o600);
          expect(statSync(`${gen}/cert.pem`).mode & 0o777).toBe(0o600);
        }
        expect(statSync(`${CA_DIR}/ca.key`).mode & 0o777).toBe(0o600);
      }
    },
  );

  it('ssh to a destination whose sshd the source cannot reach: relayed by the orchestrator, with the reason', async () => {
    // node-c's sshd, registered again with a data address nothing answers on: the orchestrator reaches the
    // node, the source does not (as across two private networks).
    const c = env.lab.nodes.find((n) => n.id === 'node-c')!;
    const far = await env.orch.api<NodeRecord>('POST', '/nodes', {
      ...c,
      id: 'node-c-far',
      dataAddress: '10.77.0.250',
    });
    expect(far.status).toBe(201);
    expect(far.body.state).toBe('ready');
    const name = 'tr-ssh-relay';
    const { pid, workload } = await env.launch(name, 'node-a');
    const before = Date.now();
    const m = await env.migrate({ workload: workload.id, destination: 'node-c-far', transport: 'ssh' });

    expect(m.error).toBeUndefined();
    expect(m.state).toBe('completed');
    expect(m.transport).toBe('ssh');
    expect(m.transportRoute).toMatch(
      /^relay: through the orchestrator's SSH connections \(two hops\); not direct: ssh node-a -> node-c-far \(10\.77\.0\.250:22\): .*(timed out|No route to host)/,
    );
    expect(tunnelKeysLeft()).toEqual([]);
    // Every page crossed the relay (plus CRIU's page-server protocol headers).
    expect(m.bytes.relayed).toBeGreaterThanOrEqual(m.bytes.pages);
    expect(m.bytes.relayed).toBeLessThan(m.bytes.pages * 1.05 + 1_000_000);
    expect(m.throughput?.pagesBytesPerSec).toBeGreaterThan(0);

    expect(pidAlive(pid)).toBe(false);
    expect(nodeOfPid(m.restoredPid!)).toBe('node-c');
    await expectContinuedOn(name, m, 'node-c', before);
    const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
    expect(w.body).toMatchObject({ nodeId: 'node-c-far', pid: m.restoredPid, state: 'running' });
  });

  it('tls with a certificate for the wrong address: CRIU aborts, the job rolls back, the workload runs once', async () => {
    const name = 'tr-tls-bad';
    const { pid, workload } = await env.launch(name, 'node-a');
    // The orchestrator knows node-b's certificate is fine (checked or issued just now) and trusts that
    // until its recheck interval; then node-b's files are replaced behind its back by a certificate from
    // the same CA for another address, as after an address change nobody told spotlift about.
    const certs = env.orch.app.get(NodeCertificates);
    const nodeB = (await env.orch.api<NodeRecord>('GET', '/nodes/node-b')).body;
    const files = await certs.ensure(nodeB);
    const wrong = await new OpenSslCertificateAuthority({ dir: CA_DIR }).issue({
      commonName: 'wrong address',
      ipAddresses: ['10.77.0.99'],
      validForMs: 86_400_000,
    });
    writeFileSync(files.cert, wrong.certPem, { mode: 0o600 });
    writeFileSync(files.key, wrong.keyPem, { mode: 0o600 });

    const before = Date.now();
    const m = await env.migrate({ workload: workload.id, destination: 'node-b', transport: 'tls' });
    expect(m.state).toBe('rolled_back');
    expect(m.transport).toBe('tls');
    expect(m.rollbackReason).toMatch(/criu dump failed on node-a/);
    expect(m.rollbackReason).toMatch(/name in the certificate does not match|tls/i);
    expect(m.phases.some((p) => p.name === 'restore' || p.name === 'commit')).toBe(false);
    expect(m.phases.find((p) => p.name === 'rollback')?.ok).toBe(true);

    // Exactly one copy: the original pid on node-a, running (not stopped), heartbeats go on gap-free.
    expect(procState(pid)).toMatch(/^[RS]$/);
    expect(nodeOfPid(pid)).toBe('node-a');
    const t = Date.now();
    await env.collector.waitForCount(name, 5, { from: nodeAddress('node-a'), since: t, timeoutMs: 15_000 });
    expect(env.collector.isSeqGapFree(name, before - 2_000)).toBe(true);
    expect(env.collector.anyNotOk(name)).toBe(false);
    expect(env.collector.sourcesSince(name, before)).toEqual([nodeAddress('node-a')]);
    const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
    expect(w.body).toMatchObject({ nodeId: 'node-a', pid, state: 'running' });

    // The failure made the orchestrator look at the certificates again: the next attempt re-issues and works.
    const retry = await env.migrate({ workload: workload.id, destination: 'node-b', transport: 'tls' });
    expect(retry.error).toBeUndefined();
    expect(retry.state).toBe('completed');
    expect(nodeOfPid(retry.restoredPid!)).toBe('node-b');
    expect(pidAlive(pid)).toBe(false);
    const current = `${TLS_DIR}/node-b/${readlinkSync(`${TLS_DIR}/node-b/current`)}/cert.pem`;
    expect(describeCertificate(readFileSync(current, 'utf8')).ipAddresses).toEqual([nodeAddress('node-b')]);
  });
});
