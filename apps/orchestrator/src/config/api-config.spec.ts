import { issueTestCertificates } from '@spotlift/testing';
import { ApiEnv, apiSettings } from './api-config.js';

describe('API settings (TLS, /docs)', () => {
  it('serves plain HTTP with /docs by default', () => {
    expect(apiSettings(ApiEnv.parse({}))).toEqual({ docs: true });
    expect(apiSettings(ApiEnv.parse({ SPOTLIFT_API_DOCS: 'false' })).docs).toBe(false);
  });

  it('wants the certificate and the key together, and readable', () => {
    expect(() => apiSettings(ApiEnv.parse({ SPOTLIFT_TLS_CERT: '/x/cert.pem' }))).toThrow(/go together/);
    expect(() => apiSettings(ApiEnv.parse({ SPOTLIFT_TLS_KEY: '/x/key.pem' }))).toThrow(/go together/);
    expect(() =>
      apiSettings(
        ApiEnv.parse({ SPOTLIFT_TLS_CERT: '/nonexistent/cert.pem', SPOTLIFT_TLS_KEY: '/nonexistent/key.pem' }),
      ),
    ).toThrow(/Cannot read SPOTLIFT_TLS_CERT \/nonexistent\/cert.pem/);
    const certs = issueTestCertificates();
    const tls = apiSettings(ApiEnv.parse({ SPOTLIFT_TLS_CERT: certs.certPath, SPOTLIFT_TLS_KEY: certs.keyPath })).tls;
    expect(tls?.cert.toString()).toMatch(/BEGIN CERTIFICATE/);
    expect(tls?.key.toString()).toMatch(/PRIVATE KEY/);
  });
});
