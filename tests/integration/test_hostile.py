"""Hostile input: over a hundred bad deliveries, slow and vanishing clients. Each gets its
documented answer, nothing bad is stored, and the server keeps serving valid traffic."""
import json
import sys
import socket
import threading
import time
import unittest

from harness import ServerTest, event, http_request, raw_exchange, sign, signed_headers


def cases(reject=False):
    """(name, raw HTTP request bytes, expected status, expected error code or None, or
    "quarantined"). Authentic deliveries with a bad body or content type are quarantined
    (stored, answered 200) by default, and refused with 400/415 under on_invalid = "reject"."""
    now = int(time.time())
    good = event("evt_hostile_template")
    out = []

    def req(name, body, headers, status, code, method="POST", path="/webhooks/unizo"):
        out.append((name, http_request(method, path, body, headers), status, code))

    def signed(body, ts=None, **extra):
        h = signed_headers(body, ts=ts)
        h.update(extra)
        return h

    # timestamps of every wrong shape. Out of the window by well over the time the cases take to
    # send: 'now + 301' falls inside it a second later (the exact edges are test_verify's, on a
    # fixed clock)
    for ts in ["", " ", "abc", "1e9", "0x10", "-1", "-99999999999", "99999999999999999999999", "1.5",
               str(now - 301), str(now + 900), str(now * 1000), "+%d" % now, "%d " % now, "\u0661\u0662"]:
        body = event()
        h = signed(body, ts=now)
        h["x-unizo-timestamp"] = ts
        expected = "missing_timestamp" if ts.strip() == "" else "stale_timestamp"
        req("timestamp %r" % ts, body, h, 401, expected)
    # signatures of every wrong shape
    body = event()
    ts, sig = sign(body, now)
    hexsig = sig[3:]
    for bad in ["", "v1=", "v1", "=", "v1=" + hexsig[:-1], "v1=" + hexsig + "00", "v1=" + "g" * 64,
                "v0=" + hexsig, "sha1=" + hexsig, hexsig[:32], "v1=" + hexsig.replace(hexsig[0], "x", 1),
                ",,,", " " * 50, "v1=" + "0" * 64, ("v1=" + "0" * 64 + ",") * 30, "v1=" + hexsig + "x",
                "V1:" + hexsig, "\t", "v1=" + hexsig[::-1], sign(body, now, secret="wrong")[1]]:
        h = {"content-type": "application/json", "x-unizo-timestamp": ts, "x-unizo-signature": bad}
        req("signature %r" % bad[:20], body, h, 401, "invalid_signature")
    h = {"content-type": "application/json", "x-unizo-timestamp": ts}
    req("no signature", body, h, 401, "missing_signature")
    req("no headers at all", body, {}, 401, "missing_timestamp")
    # duplicated headers
    dup = http_request("POST", "/webhooks/unizo", body, signed(body))
    dup = dup.replace(b"x-unizo-timestamp:", b"x-unizo-timestamp: %d\r\nx-unizo-timestamp:" % now, 1)
    out.append(("duplicated timestamp header", dup, 401, "stale_timestamp"))
    # bodies: invalid UTF-8, NUL bytes, nesting, huge numbers, wrong envelopes
    bodies = [
        (b'{"id":"\xff\xfe","type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_json"),
        (b'{"id":"a\x00b","type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{}}\x00', "invalid_json"),
        (b'{"id":"a\\u0000b","type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{"n":' + b"9" * 400 + b"}}", "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{"n":1e999}}', "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{"n":-1e999}}', "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{"n":01}}', "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{"s":"\\ud800"}}', "invalid_json"),
        (b'\xef\xbb\xbf{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_json"),
        (b"null", "invalid_json"), (b"42", "invalid_json"), (b'"str"', "invalid_json"), (b"[]", "invalid_event"),
        (b"{}", "invalid_event"), (b"{", "invalid_json"), (b"}", "invalid_json"), (b" ", "invalid_json"),
        (b'{"id":1,"type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event"),
        (b'{"id":"","type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event"),
        (b'{"id":"x","type":"","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event"),
        (b'{"id":"x","type":"a/b","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event"),
        (b'{"id":"x","type":"a","integration":[],"data":{}}', "invalid_event"),
        (b'{"id":"x","type":"a","integration":{"id":1,"type":"t"},"data":{}}', "invalid_event"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":"d"}', "invalid_event"),
        (b'{"id":"' + b"x" * 300 + b'","type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event"),
        (b'{"id":"x","type":"' + b"a" * 300 + b'","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event"),
        (b'{"a":}', "invalid_json"), (b"[1,]", "invalid_json"), (b"{'id':1}", "invalid_json"),
        (b'{"id":"x",}', "invalid_json"), (b"tru", "invalid_json"), (b'{"id":"x" "type":"a"}', "invalid_json"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "invalid_json"), (b'{"id":"\x01"}', "invalid_json"),
        (b'{"id":"","type":"a","integration":{"id":"i","type":"t"},"data":{}}', "invalid_json"),
        (b'{"id":"unterminated', "invalid_json"), (b'{"id":"\udc00"}', "invalid_json"),
        (b'{"id":"\xc0\x80"}', "invalid_json"), (b'{"id":"\xed\xa0\x80"}', "invalid_json"),
        (b'{"id":"x","type":"a","integration":{"id":"i","type":"t"},"data":{}} {}', "invalid_json"),
    ]
    for b, code in bodies:
        if reject:
            req("body %r" % b[:30], b, signed(b), 400, code)
        else:
            req("body %r" % b[:30], b, signed(b), 200, "quarantined")
    # content types
    for ct in ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/jsonx",
               "json", "", "application/x-www-form-urlencoded", "text/json"]:
        b = event()
        h = signed(b)
        h["content-type"] = ct
        if reject:
            req("content-type %r" % ct, b, h, 415, "unsupported_media_type")
        else:
            req("content-type %r" % ct, b, h, 200, "quarantined")
    b = event()
    h = signed(b)
    del h["content-type"]
    if reject:
        req("no content-type", b, h, 415, "unsupported_media_type")
    else:
        req("no content-type", b, h, 200, "quarantined")
    # size
    big = b'{"id":"big","type":"a","integration":{"id":"i","type":"t"},"data":{"p":"' + b"x" * (70 * 1024) + b'"}}'
    req("body over the cap", big, signed(big), 413, "too_large")
    # methods and paths
    for m in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]:
        req("method %s" % m, good, signed(good), 405, "method_not_allowed", method=m)
    for p in ["/", "/webhooks", "/webhooks/unizo/", "/webhooks/unizo/X", "/webhooks/unizo/a/b",
              "/webhooks/unizo/a.b", "/webhooks/unizox", "/webhooks/UNIZO", "/admin/events",
              "/webhooks/unizo/../unizo2", "/%00", "/" + "a" * 2000, "/webhooks/unizo/" + "a" * 65]:
        req("path %r" % p[:30], good, signed(good), 404, "not_found", path=p)
    return out


def run_cases(test, srv, all_cases):
    test.assertGreaterEqual(len(all_cases), 100)
    failures = []
    quarantined = set()
    for name, raw, status, code in all_cases:
        got = raw_exchange(srv.port, raw)
        if not got:
            failures.append((name, "no answer"))
            continue
        st, headers, body = got[0]
        if st != status:
            failures.append((name, "status %d, wanted %d: %r" % (st, status, body[:120])))
            continue
        if code is None:
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            failures.append((name, "not JSON: %r" % body[:80]))
            continue
        if code == "quarantined":
            # the same bad bytes twice are one delivery: the second is a duplicate
            if doc.get("status") == "duplicate" and doc.get("id") in quarantined:
                continue
            if doc.get("status") != "quarantined" or not doc.get("detail") or not doc.get("id"):
                failures.append((name, "got %r, wanted quarantined with a detail" % doc))
            quarantined.add(doc.get("id"))
        elif doc.get("error") != code or not doc.get("detail"):
            failures.append((name, "got %r, wanted %s" % (doc, code)))
    test.assertEqual(failures, [])
    return quarantined


def send_reading(port, payload):
    """Send a request the server may refuse before it has all of it: the answer is read while
    sending, so that a refusal followed by a reset of the rest is still seen. Returns the status
    (None: no answer at all) and the answer's text."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = bytearray()

    def read():
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return
                got.extend(chunk)
        except OSError:
            return  # reset after the answer: what came before it is in 'got'
    reader = threading.Thread(target=read)
    reader.start()
    try:
        s.sendall(payload)
    except OSError:
        pass  # refused mid-send
    reader.join(15)
    s.close()
    head = bytes(got).split(b"\r\n", 1)[0].split()
    return (int(head[1]) if len(head) > 1 and head[0].startswith(b"HTTP/") else None), bytes(got)


class Hostile(ServerTest):
    server_args = {"config_extra": 'http = { threads = 2, request_timeout = "2s" }'}

    def test_every_bad_delivery_gets_its_answer_and_the_server_stays_up(self):
        quarantined = run_cases(self, self.srv, cases())
        # authentic bad deliveries are kept, as quarantined, with their reasons; nothing else is
        rows = self.srv.rows("SELECT id, state, reason FROM events")
        self.assertEqual({r[0] for r in rows}, quarantined)
        self.assertEqual({r[1] for r in rows}, {"quarantined"})
        self.assertTrue(all(r[2] for r in rows))
        self.assertEqual(self.srv.rows("SELECT count(*) FROM jobs"), [(0,)])
        self.assertEqual(self.srv.metric("switchyard_webhook_requests_total", '{result="quarantined"}'),
                         len(quarantined))
        status, data, _ = self.srv.post(event("evt_after_hostile"))
        self.assertEqual((status, data["status"]), (200, "accepted"))


    def test_oversized_headers_are_refused_and_extra_headers_never_stored(self):
        # over h2o's header limit (about 408 KB in all): refused before any check
        b = event()
        h = signed_headers(b)
        h["x-padding"] = "y" * 600000
        status, text = send_reading(self.srv.port, http_request("POST", "/webhooks/unizo", b, h))
        self.assertEqual(status, 400, text)  # an answer, not a silent close
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(0,)])
        # under it, a signed event is taken, but only the documented headers are kept
        b = event("evt_padded")
        h = signed_headers(b)
        h["x-padding"] = "y" * 200000
        got = raw_exchange(self.srv.port, http_request("POST", "/webhooks/unizo", b, h))
        self.assertEqual(got[0][0], 200)
        kept = json.loads(self.srv.rows("SELECT headers FROM events WHERE id = 'evt_padded'")[0][0])
        self.assertNotIn("x-padding", kept)
        self.assertEqual(self.srv.post(event())[0], 200)

    def test_slow_and_vanishing_clients_do_not_block_others(self):
        # a client sending a byte per second, and clients that vanish mid-body
        slow = socket.create_connection(("127.0.0.1", self.srv.port))
        raw = http_request("POST", "/webhooks/unizo", event(), signed_headers(event()))

        def trickle():
            try:
                for i in range(8):
                    slow.send(raw[i:i + 1])
                    time.sleep(1)
            except OSError:
                pass  # the server hung up on it: that is the point
        t = threading.Thread(target=trickle)
        t.start()
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.sendall(raw[:len(raw) // 2])  # headers and half a body, then gone
            s.close()
        t0 = time.time()
        for i in range(20):
            self.assertEqual(self.srv.post(event("evt_meanwhile_%d" % i))[0], 200)
        self.assertLess(time.time() - t0, 5)
        t.join()
        # the slow client was cut off by request_timeout (2 s), not served
        slow.settimeout(5)
        try:
            rest = slow.recv(1000)
        except OSError:
            rest = b""
        slow.close()
        self.assertNotIn(b"accepted", rest)


class Flood(ServerTest):
    server_args = {"config_extra": 'http = { threads = 2, max_connections = 5 }'}

    def test_connections_beyond_max_connections_are_closed_and_the_server_stays_up(self):
        held = []
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            held.append(s)
        time.sleep(0.3)
        refused = 0
        extra = []
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.settimeout(3)
            try:
                if s.recv(1) == b"":
                    refused += 1       # closed by the server at once
            except (socket.timeout, ConnectionResetError):
                refused += isinstance(sys.exc_info()[1], ConnectionResetError)
            extra.append(s)
        self.assertEqual(refused, 50)
        self.assertEqual(self.srv.metric("switchyard_connections_refused_total", '{reason="max_connections"}'), 50)
        # the held connections still work, and once they go, new ones are served
        body = event("evt_held")
        got = raw_exchange_on(held[0], http_request("POST", "/webhooks/unizo", body, signed_headers(body)))
        self.assertEqual(got, 200)
        for s in held + extra:
            s.close()
        time.sleep(0.3)
        self.assertEqual(self.srv.post(event("evt_after_flood"))[0], 200)


def connect_from(source, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_at_once(s):
    """True when the server closes the connection without waiting for a request."""
    s.settimeout(3)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def deliver_on(s, event_id):
    body = event(event_id)
    s.settimeout(10)
    return raw_exchange_on(s, http_request("POST", "/webhooks/unizo", body, signed_headers(body)))


class AllowAtAccept(ServerTest):
    """A direct peer outside webhook.allow is closed as it is accepted: it holds no slot."""
    server_args = {"config_extra": 'http = { threads = 2, max_connections = 5, request_timeout = "20s" }',
                   "webhook_extra": 'allow = { "127.0.0.2" }'}

    def test_refused_addresses_cannot_hold_the_slots(self):
        bad = [connect_from("127.0.0.1", self.srv.port) for _ in range(5)]
        for s in bad:
            try:  # a request that never finishes, as a slow attacker sends it
                s.sendall(b"POST /webhooks/unizo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            except OSError:
                pass
        self.assertEqual([closed_at_once(s) for s in bad], [True] * 5)
        # a real delivery from the allowed address still gets in, on one of the 5 slots
        good = connect_from("127.0.0.2", self.srv.port)
        self.assertEqual(deliver_on(good, "evt_allowed_at_accept"), 200)
        self.assertEqual(self.srv.rows("SELECT id FROM events"), [("evt_allowed_at_accept",)])
        self.assertEqual(self.srv.metric("switchyard_connections_refused_total", '{reason="not_allowed"}'), 5)
        for s in bad + [good]:
            s.close()


class PerAddress(ServerTest):
    """One address cannot take every slot; a trusted proxy (everything comes through it) can."""
    server_args = {"config_extra": 'http = { threads = 2, max_connections = 20, max_connections_per_address = 3 }',
                   "webhook_extra": 'trusted_proxies = { "127.0.0.3" }'}

    def test_one_address_cannot_take_every_slot(self):
        held = [connect_from("127.0.0.1", self.srv.port) for _ in range(3)]
        for i, s in enumerate(held):
            self.assertEqual(deliver_on(s, "evt_pa_%d" % i), 200)  # open and counted
        extra = connect_from("127.0.0.1", self.srv.port)
        self.assertTrue(closed_at_once(extra))
        self.assertEqual(self.srv.metric("switchyard_connections_refused_total", '{reason="per_address"}'), 1)
        # another address is served, and a proxy's connections are not capped per address
        self.assertEqual(deliver_on(connect_from("127.0.0.2", self.srv.port), "evt_pa_other"), 200)
        proxied = [connect_from("127.0.0.3", self.srv.port) for _ in range(5)]
        self.assertEqual([deliver_on(s, "evt_pa_proxy_%d" % i) for i, s in enumerate(proxied)], [200] * 5)
        # once one of the three closes, that address may open another
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            s = connect_from("127.0.0.1", self.srv.port)
            s.settimeout(0.2)
            try:
                if deliver_on(s, "evt_pa_again") == 200:
                    break
            except (OSError, IndexError, ValueError):
                pass
            s.close()
            self.assertLess(time.monotonic(), deadline, "the closed connection's place never came back")
            time.sleep(0.05)
        for c in held + proxied + [s, extra]:
            c.close()


def raw_exchange_on(sock, payload):
    sock.sendall(payload)
    line = sock.makefile("rb").readline()
    return int(line.split()[1])


class HostileRejecting(ServerTest):
    server_args = {"config_extra": 'http = { threads = 2, request_timeout = "2s" }',
                   "webhook_extra": 'on_invalid = "reject"'}

    def test_with_on_invalid_reject_bad_deliveries_get_400_and_nothing_is_stored(self):
        run_cases(self, self.srv, cases(reject=True))
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(0,)])  # nothing bad stored
        status, data, _ = self.srv.post(event("evt_after_hostile"))
        self.assertEqual((status, data["status"]), (200, "accepted"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
