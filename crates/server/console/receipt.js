// Checks a cordon receipt in the customer's browser, trusting neither the page nor the
// server for the mathematics: the entry's leaf hash (SHA-256), its RFC 9162 inclusion proof up
// to the checkpoint in the receipt, the checkpoint's C2SP signed-note signature (Ed25519) by
// the log's key, and an RFC 9162 consistency proof from that checkpoint to the public one
// (`/v1/ledger/checkpoint`), so an old receipt is tied to the log as it is now. All of it runs
// through WebCrypto. A browser without Ed25519 asks the server to check the receipt instead,
// and the answer says so.
//
// The functions above the page's wiring are plain ES module exports: the test command runs
// them against the project's shared RFC 6962 and signed-note vectors under Node.

const encoder = new TextEncoder();

/** Raised where WebCrypto has no Ed25519: the page falls back to the server's check. */
export class NoEd25519 extends Error {}

export function fromBase64(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new Error('not base64');
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let at = 0; at < binary.length; at++) bytes[at] = binary.charCodeAt(at);
  return bytes;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function same(a, b) {
  if (a.length !== b.length) return false;
  let differ = 0;
  for (let at = 0; at < a.length; at++) differ |= a[at] ^ b[at];
  return differ === 0;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** RFC 6962 leaf hash: SHA-256(0x00 || entry). */
export function leafHash(entry) {
  return sha256(concat(new Uint8Array([0]), entry));
}

function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

/** RFC 9162 2.1.3.2: `leaf` is at `index` of the tree of `size` with root `root`. Throws if not. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  index = BigInt(index);
  size = BigInt(size);
  if (index >= size) throw new Error(`index ${index} is outside a tree of ${size}`);
  if (leaf.length !== 32 || root.length !== 32) throw new Error('a leaf hash and a root are 32 bytes');
  let position = index;
  let last = size - 1n;
  let running = leaf;
  for (const sibling of proof) {
    if (last === 0n) throw new Error('the inclusion proof is too long');
    if ((position & 1n) === 1n || position === last) {
      running = await nodeHash(sibling, running);
      if ((position & 1n) === 0n) {
        while ((position & 1n) === 0n && position !== 0n) {
          position >>= 1n;
          last >>= 1n;
        }
      }
    } else {
      running = await nodeHash(running, sibling);
    }
    position >>= 1n;
    last >>= 1n;
  }
  if (last !== 0n) throw new Error('the inclusion proof is too short');
  if (!same(running, root)) throw new Error('the inclusion proof does not lead to the checkpoint\'s root');
}

/** RFC 9162 2.1.4.2: the tree of `size1` with `root1` is a prefix of that of `size2` with `root2`. */
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  size1 = BigInt(size1);
  size2 = BigInt(size2);
  if (size1 > size2) throw new Error(`a tree of ${size1} cannot be a prefix of one of ${size2}`);
  if (size1 === 0n) throw new Error('a consistency proof from an empty tree proves nothing');
  if (size1 === size2) {
    if (proof.length !== 0) throw new Error('trees of equal size need an empty proof');
    if (!same(root1, root2)) throw new Error('two checkpoints of the same size have different roots');
    return;
  }
  if (root1.length !== 32 || root2.length !== 32) throw new Error('a root is 32 bytes');
  const path = (size1 & (size1 - 1n)) === 0n ? [root1, ...proof] : [...proof];
  if (path.length === 0) throw new Error('the consistency proof is empty');
  let position = size1 - 1n;
  let last = size2 - 1n;
  while ((position & 1n) === 1n) {
    position >>= 1n;
    last >>= 1n;
  }
  let first = path[0];
  let second = path[0];
  for (const node of path.slice(1)) {
    if (last === 0n) throw new Error('the consistency proof is too long');
    if ((position & 1n) === 1n || position === last) {
      first = await nodeHash(node, first);
      second = await nodeHash(node, second);
      if ((position & 1n) === 0n) {
        while ((position & 1n) === 0n && position !== 0n) {
          position >>= 1n;
          last >>= 1n;
        }
      }
    } else {
      second = await nodeHash(second, node);
    }
    position >>= 1n;
    last >>= 1n;
  }
  if (last !== 0n) throw new Error('the consistency proof is too short');
  if (!same(first, root1)) throw new Error('the consistency proof does not match the older checkpoint');
  if (!same(second, root2)) throw new Error('the consistency proof does not match the newer checkpoint');
}

/** A C2SP verifier key `name+hexid+base64(0x01 || key)`, its key ID checked. */
export async function parseVerifierKey(text) {
  // Split at the first two `+` only: the key's base64 may hold `+` itself.
  const trimmed = text.trim();
  const first = trimmed.indexOf('+');
  const second = first < 0 ? -1 : trimmed.indexOf('+', first + 1);
  if (first <= 0 || second < 0) throw new Error('not a verifier key: expected name+id+key');
  const [name, idHex, keyBase64] = [trimmed.slice(0, first), trimmed.slice(first + 1, second), trimmed.slice(second + 1)];
  const typed = fromBase64(keyBase64);
  if (typed.length !== 33 || typed[0] !== 0x01) throw new Error('not an Ed25519 verifier key');
  const publicKey = typed.slice(1);
  const digest = await sha256(concat(encoder.encode(name), new Uint8Array([0x0a]), typed));
  const keyId = Array.from(digest.slice(0, 4), (byte) => byte.toString(16).padStart(2, '0')).join('');
  if (keyId !== idHex.toLowerCase()) throw new Error('the verifier key\'s ID does not match its key');
  return { name, keyId: digest.slice(0, 4), publicKey };
}

async function ed25519Verify(publicKey, signature, message) {
  let key;
  try {
    key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (error) {
    throw new NoEd25519(`this browser cannot check Ed25519 signatures (${error.name})`);
  }
  return crypto.subtle.verify({ name: 'Ed25519' }, key, signature, message);
}

/** Checks a signed note's signature by `key`; returns the signed text. */
export async function openNote(note, key) {
  if (!note.endsWith('\n')) throw new Error('a note must end with a newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new Error('the note has no signatures');
  const text = note.slice(0, split + 1);
  let found = false;
  for (const line of note.slice(split + 2).split('\n').filter((line) => line !== '')) {
    if (!line.startsWith('\u2014 ')) throw new Error('a signature line does not start with an em dash');
    const [name, signatureBase64] = line.slice(2).split(' ');
    if (name !== key.name || signatureBase64 === undefined) continue;
    const bytes = fromBase64(signatureBase64);
    if (bytes.length !== 68 || !same(bytes.slice(0, 4), key.keyId)) continue;
    found = true;
    if (!(await ed25519Verify(key.publicKey, bytes.slice(4), encoder.encode(text)))) {
      throw new Error(`the signature by ${key.name} does not verify: the checkpoint was altered or signed by another key`);
    }
  }
  if (!found) throw new Error(`the note carries no signature by ${key.name}`);
  return text;
}

/** A signed checkpoint: its origin, size and root, after its signature is checked. */
export async function openCheckpoint(note, key) {
  const [origin, size, root] = (await openNote(note, key)).split('\n');
  if (origin !== key.name) throw new Error(`the checkpoint is for ${origin}, not ${key.name}`);
  if (!/^(0|[1-9][0-9]*)$/.test(size ?? '')) throw new Error('the checkpoint\'s size is not a number');
  const rootBytes = fromBase64(root ?? '');
  if (rootBytes.length !== 32) throw new Error('the checkpoint\'s root is not a SHA-256 hash');
  return { origin, size: BigInt(size), root: rootBytes };
}

/** A C2SP tlog-proof: its index, proof hashes and checkpoint note. */
export function parseTlogProof(text) {
  let rest = text;
  const take = (prefix) => {
    if (!rest.startsWith(prefix)) throw new Error(`the proof does not have its ${prefix.trim()} line`);
    rest = rest.slice(prefix.length);
  };
  take('c2sp.org/tlog-proof@v1\n');
  if (rest.startsWith('extra ')) rest = rest.slice(rest.indexOf('\n') + 1);
  take('index ');
  const newline = rest.indexOf('\n');
  const index = rest.slice(0, newline);
  if (!/^(0|[1-9][0-9]*)$/.test(index)) throw new Error('the proof\'s index is not a number');
  rest = rest.slice(newline + 1);
  const hashes = [];
  while (!rest.startsWith('\n')) {
    const end = rest.indexOf('\n');
    if (end < 0) throw new Error('the proof has no checkpoint');
    const hash = fromBase64(rest.slice(0, end));
    if (hash.length !== 32) throw new Error('a proof line is not a SHA-256 hash');
    hashes.push(hash);
    rest = rest.slice(end + 1);
  }
  return { index: BigInt(index), hashes, note: rest.slice(1) };
}

/**
 * Checks a receipt (the downloaded JSON, as an object) with the verifier key `keyText`, then
 * ties its checkpoint to the public one: `publicCheckpoint()` gives the public note, and
 * `consistency(old, new)` the proof between them (base64 hashes).
 */
export async function verifyReceipt(receipt, keyText, publicCheckpoint, consistency) {
  if (receipt?.format !== 'cordon-receipt/1') throw new Error('this is not a cordon receipt file');
  const key = await parseVerifierKey(keyText);
  const entry = fromBase64(receipt.entry);
  const proof = parseTlogProof(receipt.proof);
  if (proof.index !== BigInt(receipt.index)) throw new Error('the proof is for another entry than the file says');
  const checkpoint = await openCheckpoint(proof.note, key);
  await verifyInclusion(proof.index, checkpoint.size, await leafHash(entry), proof.hashes, checkpoint.root);
  const current = await openCheckpoint(await publicCheckpoint(), key);
  if (current.size < checkpoint.size) throw new Error('the public checkpoint is older than the receipt\'s');
  const hashes = current.size === checkpoint.size ? [] : (await consistency(checkpoint.size, current.size)).map(fromBase64);
  await verifyConsistency(checkpoint.size, current.size, hashes, checkpoint.root, current.root);
  return {
    index: proof.index,
    size: checkpoint.size,
    publicSize: current.size,
    origin: checkpoint.origin,
    entry: new TextDecoder().decode(entry),
  };
}

// ---- the page ----

async function fetched(url, options) {
  const response = await fetch(url, { credentials: 'same-origin', ...options });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response;
}

const publicCheckpoint = async () => (await fetched('/v1/ledger/checkpoint')).text();
const consistencyProof = async (old, now) =>
  (await (await fetched(`/console/ledger/consistency/${old}/${now}`)).text()).split('\n').filter((line) => line);

async function checkOnServer(text) {
  const csrf = document.querySelector('form.logout input[name=csrf]')?.value ?? '';
  const body = new URLSearchParams({ csrf, receipt: text });
  const answer = await (await fetched('/console/me/receipts/check', { method: 'POST', body })).json();
  if (!answer.verified) throw new Error(answer.problem);
  return { index: answer.index, size: answer.checkpoint_size, publicSize: answer.current_size };
}

/** Checks receipt `text`, in the browser or, without Ed25519 here, on the server; shows the answer. */
async function check(text, output) {
  output.textContent = 'Checking…';
  delete output.dataset.verified;
  const keyText = document.getElementById('verifier-key').dataset.verifierKey;
  let found;
  let by = 'browser';
  try {
    try {
      found = await verifyReceipt(JSON.parse(text), keyText, publicCheckpoint, consistencyProof);
    } catch (error) {
      if (!(error instanceof NoEd25519)) throw error;
      by = 'server';
      found = await checkOnServer(text);
    }
    output.dataset.verified = 'true';
    output.dataset.checkedBy = by;
    output.textContent =
      `\u2713 In the log: entry ${found.index} of the signed checkpoint of ${found.size} entries, ` +
      `consistent with today's public checkpoint of ${found.publicSize} ` +
      (by === 'browser' ? '(checked in this browser).' : '(checked by the server: this browser has no Ed25519).');
  } catch (error) {
    output.dataset.verified = 'false';
    output.dataset.checkedBy = by;
    output.textContent = `\u2717 Does not verify: ${error.message}`;
  }
}

if (typeof document !== 'undefined') {
  for (const button of document.querySelectorAll('button.verify-receipt')) {
    button.addEventListener('click', async () => {
      const output = document.querySelector(`output.receipt-answer[data-index="${button.dataset.index}"]`);
      try {
        const text = await (await fetched(`/console/me/receipts/${button.dataset.index}`)).text();
        await check(text, output);
      } catch (error) {
        output.dataset.verified = 'false';
        output.textContent = `\u2717 The receipt could not be fetched: ${error.message}`;
      }
    });
  }
  const file = document.getElementById('receipt-file');
  file?.addEventListener('change', async () => {
    const chosen = file.files?.[0];
    if (chosen) await check(await chosen.text(), document.getElementById('receipt-file-answer'));
  });
}
