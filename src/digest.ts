/**
 * SHA-256, synchronously (node:crypto under nodejs_compat). Every API request
 * hashes its key, and every acquire its new connect token: WebCrypto's digest
 * is asynchronous, and on this path its round trips cost more than the hashing.
 */
import { createHash } from "node:crypto";

export function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text, "utf8").digest());
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}
