import { errors } from 'jose';
import { GatewayError } from '../errors.js';

/**
 * The 401 for a token jose refused, saying which check failed. Fixed texts
 * only: neither the token nor any of its claim values is echoed (jose's own
 * messages are not used, and its errors carry the payload).
 */
export function jwtRejection(err: unknown, algorithms: readonly string[]): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError('unauthorized', `Invalid token: ${reason(err, algorithms)}`);
}

function reason(err: unknown, algorithms: readonly string[]): string {
  if (err instanceof errors.JWTExpired) return err.claim === 'exp' ? 'expired (exp is past, beyond 30 s of leeway)' : `${err.claim} check failed`;
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return `no ${err.claim} claim`;
    switch (err.claim) {
      case 'nbf':
        return 'not valid yet (nbf is ahead, beyond 30 s of leeway)';
      case 'iss':
        return 'wrong issuer (iss)';
      case 'aud':
        return 'wrong audience (aud)';
    }
    return `invalid ${err.claim} claim`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return `algorithm not accepted (accepted: ${algorithms.join(', ')})`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature does not verify (altered, truncated, or signed with another key)';
  if (err instanceof errors.JWKSNoMatchingKey) return "signed with a key the identity provider does not publish (unknown kid)";
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'signature does not verify with any of the matching keys';
  if (err instanceof errors.JOSENotSupported) return 'unsupported algorithm or key type';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed (not a signed JWT, or truncated)';
  return 'could not be verified';
}
