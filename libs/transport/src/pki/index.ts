export * from './certificate-authority.port.js';
export * from './certificate-policy.js';
export * from './node-certificates.js';
export * from './openssl-certificate-authority.js';
