// The template cluster is initialised once with a throw-away password; each server then gets the
// fleet's password as a pre-computed SCRAM verifier, so the plain password never travels in SQL
// (it could otherwise surface in a server log line).
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

export function scramVerifier(password: string, iterations = 4096): string {
  const salt = randomBytes(16);
  // The server applies SASLprep (NFKC for ordinary text) before hashing; match it.
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

export function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}
