/**
 * What each TLS failure Node reports means for the operator: which setting to fix. Node's codes come
 * from OpenSSL (certificate verification) or name a TLS alert the broker sent.
 */

export interface TlsProblem {
  /** What went wrong, for a person: names the variable to fix. */
  readonly explain: string;
}

/** Node's verification codes when the broker's certificate does not chain to a trusted CA. */
const UNTRUSTED_SERVER: TlsProblem = {
  explain:
    "certificate verification failed: the broker's certificate is not signed by a CA in KAFKA_SSL_CA_FILE (the system's CAs when it is unset); set KAFKA_SSL_CA_FILE to the CA that signed the brokers' certificates",
};
const INVALID_SERVER: TlsProblem = {
  explain:
    "certificate verification failed: the broker's certificate is expired, not yet valid or revoked; check the brokers' certificates and KAFKA_SSL_CA_FILE",
};
const WRONG_HOST: TlsProblem = {
  explain:
    "certificate verification failed: the broker's certificate does not name the host in KAFKA_BROKERS; list the brokers by a name their certificates carry",
};
const CLIENT_REJECTED: TlsProblem = {
  explain:
    'the broker rejected the client certificate, or its absence (mutual TLS); set KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE to a certificate the brokers trust and its key',
};
const NOT_TLS: TlsProblem = {
  explain:
    "the broker did not answer TLS; check that KAFKA_BROKERS lists the brokers' SSL listener, or unset KAFKA_SSL for a plaintext one",
};

const TLS_CODES = new Map<string, TlsProblem>([
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', UNTRUSTED_SERVER],
  ['SELF_SIGNED_CERT_IN_CHAIN', UNTRUSTED_SERVER],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', UNTRUSTED_SERVER],
  ['UNABLE_TO_GET_ISSUER_CERT', UNTRUSTED_SERVER],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', UNTRUSTED_SERVER],
  ['UNABLE_TO_DECRYPT_CERT_SIGNATURE', UNTRUSTED_SERVER],
  ['CERT_SIGNATURE_FAILURE', UNTRUSTED_SERVER],
  ['CERT_UNTRUSTED', UNTRUSTED_SERVER],
  ['CERT_REJECTED', UNTRUSTED_SERVER],
  ['INVALID_CA', UNTRUSTED_SERVER],
  ['PATH_LENGTH_EXCEEDED', UNTRUSTED_SERVER],
  ['INVALID_PURPOSE', UNTRUSTED_SERVER],
  ['CERT_HAS_EXPIRED', INVALID_SERVER],
  ['CERT_NOT_YET_VALID', INVALID_SERVER],
  ['CERT_REVOKED', INVALID_SERVER],
  ['ERR_TLS_CERT_ALTNAME_INVALID', WRONG_HOST],
  ['HOSTNAME_MISMATCH', WRONG_HOST],
  // TLS alerts the broker sends when it does not accept the client's certificate (Kafka 4.4 answers
  // a missing one with bad_certificate, an untrusted one with certificate_unknown, over TLS 1.3 too).
  ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', CLIENT_REJECTED],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', CLIENT_REJECTED],
  ['ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', CLIENT_REJECTED],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', CLIENT_REJECTED],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', CLIENT_REJECTED],
  ['ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', CLIENT_REJECTED],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REQUIRED', CLIENT_REJECTED],
  ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', CLIENT_REJECTED],
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', CLIENT_REJECTED],
  ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', CLIENT_REJECTED],
  ['ERR_SSL_WRONG_VERSION_NUMBER', NOT_TLS],
  ['ERR_SSL_PACKET_LENGTH_TOO_LONG', NOT_TLS],
  ['ERR_SSL_HTTP_REQUEST', NOT_TLS],
]);

/**
 * TLS alerts by number (RFC 8446 §6), as Node would name them. kafkajs sometimes re-wraps a socket
 * error as a KafkaJSConnectionError without Node's `code` (seen on Node 24 for a missing client
 * certificate); OpenSSL's message still ends in "SSL alert number N".
 */
const TLS_ALERTS: Readonly<Record<number, string>> = {
  40: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  42: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  43: 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  44: 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  45: 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  46: 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  48: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  49: 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  116: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
};

/** The code an OpenSSL message's "SSL alert number N" stands for. */
export function alertCode(message: string): string | undefined {
  const alert = /SSL alert number (\d+)/.exec(message)?.[1];
  return alert === undefined ? undefined : TLS_ALERTS[Number(alert)];
}

/**
 * Node names an alert after OpenSSL's text for it: OpenSSL 3.0 (Node 20) says "sslv3 alert bad
 * certificate", OpenSSL 3.5 (Node 24) "ssl/tls alert bad certificate" — one alert, two codes.
 */
export function tlsCodeProblem(code: string): TlsProblem | undefined {
  return TLS_CODES.get(code) ?? TLS_CODES.get(code.replace('ERR_SSL_SSL/TLS_ALERT_', 'ERR_SSL_SSLV3_ALERT_'));
}
