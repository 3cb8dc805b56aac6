import { X509Certificate } from 'node:crypto';

/** The facts of a certificate that the rotation decision looks at. */
export interface CertificateFacts {
  ipAddresses: string[];
  dnsNames: string[];
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
  issuedBy(caCertPem: string): boolean;
}

export function describeCertificate(pem: string): CertificateFacts {
  const cert = new X509Certificate(pem);
  const sans = (cert.subjectAltName ?? '').split(/,\s*/).filter(Boolean);
  const pick = (prefix: string) => sans.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  return {
    ipAddresses: pick('IP Address:'),
    dnsNames: pick('DNS:'),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint256: cert.fingerprint256,
    issuedBy(caCertPem: string): boolean {
      const ca = new X509Certificate(caCertPem);
      return cert.checkIssued(ca) && cert.verify(ca.publicKey);
    },
  };
}

export interface RotationInput {
  /** The node's certificate as found on the node (undefined: none there). */
  certPem?: string | undefined;
  /** The CA certificate found next to it on the node. */
  nodeCaPem?: string | undefined;
  caCertPem: string;
  /** The node's data address: CRIU checks the page-server's certificate against it. */
  address: string;
  now: Date;
  /** Re-issue when less than this much validity is left. */
  renewBeforeMs: number;
}

/**
 * Why a node's certificate must be (re)issued, or undefined when it can be reused. Pure, so the rules are
 * tested without any node: missing or unreadable, another CA, the node's address changed (CRIU refuses a
 * certificate without an IP SAN for the address it connected to), not valid yet, or close to expiry.
 */
export function rotationReason(input: RotationInput): string | undefined {
  if (!input.certPem) return 'no certificate on the node yet';
  let facts: CertificateFacts;
  try {
    facts = describeCertificate(input.certPem);
  } catch {
    return 'the certificate on the node is unreadable';
  }
  if (input.nodeCaPem?.trim() !== input.caCertPem.trim()) return 'the node holds another CA certificate';
  if (!facts.issuedBy(input.caCertPem)) return 'the certificate was issued by another CA';
  if (!facts.ipAddresses.includes(input.address)) {
    return `the node's address changed: the certificate is for ${facts.ipAddresses.join(', ') || 'no IP'}, the data address is ${input.address}`;
  }
  if (facts.notBefore.getTime() > input.now.getTime())
    return `the certificate is not valid before ${facts.notBefore.toISOString()}`;
  const left = facts.notAfter.getTime() - input.now.getTime();
  if (left <= 0) return `the certificate expired at ${facts.notAfter.toISOString()}`;
  if (left < input.renewBeforeMs)
    return `the certificate expires at ${facts.notAfter.toISOString()}, within the renewal window`;
  return undefined;
}
