'use strict';
// Reference Unizo webhook receiver in Express, written the way the Unizo
// docs show it: verify the HMAC, check the timestamp window, dedupe by id.
//
// usage: node server.js [MODE] [PORT] [SECRET]
//   MODE   json (default): express.json(), HMAC over JSON.stringify(req.body)
//          raw:            express.raw(),  HMAC over the raw body bytes
//   each argument falls back to the MODE, PORT, SECRET environment variables;
//   HOST (default 127.0.0.1) is the address to listen on.
const crypto = require('crypto');
const express = require('express');

const mode = process.argv[2] || process.env.MODE || 'json';
const port = Number(process.argv[3] || process.env.PORT || 3000);
const secret = process.argv[4] || process.env.SECRET;
const host = process.env.HOST || '127.0.0.1';
const TOLERANCE_S = 300;

if (!secret) {
  console.error('SECRET is required (argv[4] or env SECRET)');
  process.exit(2);
}
if (mode !== 'json' && mode !== 'raw') {
  console.error('MODE must be json or raw, not ' + mode);
  process.exit(2);
}

const seen = new Set();

function signatureOk(timestamp, signature, payload) {
  if (typeof signature !== 'string') return false;
  const given = signature.startsWith('v1=') ? signature.slice(3) : signature;
  const expected = crypto
    .createHmac('sha256', secret)
    .update(timestamp + '.')
    .update(payload)
    .digest('hex');
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  // timingSafeEqual throws on a length mismatch, so check that first.
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function timestampOk(timestamp) {
  if (typeof timestamp !== 'string' || !/^\d+$/.test(timestamp)) return false;
  const now = Math.floor(Date.now() / 1000);
  return Math.abs(now - Number(timestamp)) <= TOLERANCE_S;
}

function handle(req, res, event, payload) {
  const timestamp = req.get('x-unizo-timestamp');
  const signature = req.get('x-unizo-signature');
  if (!timestampOk(timestamp)) {
    return res.status(401).json({ error: 'timestamp outside tolerance' });
  }
  if (!signatureOk(timestamp, signature, payload)) {
    return res.status(401).json({ error: 'invalid signature' });
  }
  if (!event || typeof event.id !== 'string') {
    return res.status(400).json({ error: 'invalid event' });
  }
  if (seen.has(event.id)) {
    return res.status(200).json({ status: 'duplicate' });
  }
  seen.add(event.id);
  return res.status(200).json({ status: 'accepted', id: event.id });
}

const app = express();

if (mode === 'json') {
  app.use(express.json());
  app.post('/webhooks/unizo', (req, res) => {
    handle(req, res, req.body, JSON.stringify(req.body));
  });
} else {
  app.post('/webhooks/unizo', express.raw({ type: 'application/json' }), (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    let event;
    try {
      event = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      event = null;
    }
    // An unparsable body only matters once the signature checks out:
    // handle() answers 400 for it then, 401 before.
    handle(req, res, event, raw);
  });
}

app.listen(port, host, () => {
  console.log('express peer (' + mode + ') listening on ' + host + ':' + port);
});
