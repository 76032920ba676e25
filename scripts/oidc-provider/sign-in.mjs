// Signs in at the provider as a browser would, with PKCE, for a test that needs a provider's
// tokens without cordon's console: follows the redirects by hand, keeps the provider's
// cookies, and prints the token endpoint's JSON answer (id_token, access_token).
//
//   node sign-in.mjs ISSUER CLIENT_SECRET REDIRECT_URI LOGIN PASSWORD
import { createHash, randomBytes } from 'node:crypto';

const [issuer, clientSecret, redirectUri, login, password] = process.argv.slice(2);
const jar = new Map();
const remember = (response) => {
  for (const cookie of response.headers.getSetCookie()) {
    const [pair] = cookie.split(';');
    const at = pair.indexOf('=');
    jar.set(pair.slice(0, at), pair.slice(at + 1));
  }
};
const cookies = () => [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
const go = async (url, init = {}) => {
  const response = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookies() } });
  remember(response);
  return response;
};
const base64url = (bytes) => Buffer.from(bytes).toString('base64url');
const verifier = base64url(randomBytes(32));
const challenge = base64url(createHash('sha256').update(verifier).digest());
const state = base64url(randomBytes(16));
const nonce = base64url(randomBytes(16));
const auth = new URL(`${issuer}/auth`);
for (const [name, value] of Object.entries({
  client_id: 'cordon-console', response_type: 'code', scope: 'openid email', redirect_uri: redirectUri,
  state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
})) auth.searchParams.set(name, value);
let response = await go(auth);
let location = new URL(response.headers.get('location'), issuer);
response = await go(new URL(`${location.pathname}/login`, issuer), {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ login, password }).toString(),
});
if (response.status >= 400) { console.error(`sign-in refused: ${response.status}`); process.exit(1); }
while (response.status >= 300 && response.status < 400) {
  location = new URL(response.headers.get('location'), issuer);
  if (location.href.startsWith(redirectUri)) break;
  response = await go(location);
}
const code = location.searchParams.get('code');
if (!code || location.searchParams.get('state') !== state) { console.error(`no code: ${location}`); process.exit(1); }
const token = await fetch(`${issuer}/token`, {
  method: 'POST',
  headers: {
    'content-type': 'application/x-www-form-urlencoded',
    authorization: `Basic ${Buffer.from(`cordon-console:${clientSecret}`).toString('base64')}`,
  },
  body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }).toString(),
});
const answer = await token.json();
if (!token.ok) { console.error(JSON.stringify(answer)); process.exit(1); }
console.log(JSON.stringify({ ...answer, nonce }));
