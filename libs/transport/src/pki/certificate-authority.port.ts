/** What a node certificate must say: who it is for and the addresses peers will check it against. */
export interface CertificateRequest {
  commonName: string;
  /** IP subjectAltNames. CRIU compares the peer's certificate with the `--address` it used, so the node's data address goes here. */
  ipAddresses: string[];
  dnsNames?: string[];
  validForMs: number;
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

/**
 * A certificate authority for page-traffic TLS. The CA key never leaves the orchestrator; nodes get their
 * own certificate and key plus the CA certificate. A port, so tests can issue certificates (including bad ones).
 */
export abstract class CertificateAuthority {
  abstract caCertPem(): Promise<string>;
  abstract issue(request: CertificateRequest): Promise<IssuedCertificate>;
}
