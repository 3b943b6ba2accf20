// Verify a botgate origin assertion the way an origin does, with jose and only the key-set URL.
//
//   node verify.mjs CERTS_URL ISSUER AUDIENCE   # assertions on stdin, one per line
//
// Prints `ok <kid> <claims JSON>` or `fail <error>` per line, from one remote key set.
import { createRemoteJWKSet, jwtVerify } from "jose";
import { createInterface } from "node:readline";

const [certsUrl, issuer, audience] = process.argv.slice(2);
const JWKS = createRemoteJWKSet(new URL(certsUrl));
for await (const line of createInterface({ input: process.stdin })) {
  const token = line.trim();
  if (!token) continue;
  try {
    const { payload, protectedHeader } = await jwtVerify(token, JWKS, { issuer, audience });
    const sorted = Object.fromEntries(Object.entries(payload).sort());
    console.log("ok", protectedHeader.kid, JSON.stringify(sorted));
  } catch (e) {
    console.log("fail", e.code ?? e.name, String(e.message).replace(/\n/g, " "));
  }
}
