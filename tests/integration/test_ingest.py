"""The webhook endpoint's answers, in the order the checks run."""
import hashlib
import hmac
import http.client
import json
import os
import time
import unittest

from harness import (EVENTS, OLD_SECRET, SECRET, SENSITIVE, ServerTest, event, http_request,
                     raw_exchange, sign, signed_headers)


class Answers(ServerTest):
    def test_accepted_then_duplicate_and_stored(self):
        body = event("evt_accept_1")
        status, data, r = self.srv.post(body)
        self.assertEqual(status, 200)
        self.assertEqual(data, {"status": "accepted", "id": "evt_accept_1"})
        self.assertEqual(r.getheader("content-type"), "application/json")
        status, data, _ = self.srv.post(body)
        self.assertEqual((status, data), (200, {"status": "duplicate", "id": "evt_accept_1"}))
        rows = self.srv.rows()
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0][0], "evt_accept_1")
        self.assertEqual(rows[0][1], "scm.pull_request.created")
        self.assertEqual(rows[0][2].encode(), body)  # raw bytes kept
        headers = json.loads(rows[0][3])
        self.assertIn("x-unizo-timestamp", headers)
        self.assertEqual(headers["content-type"], "application/json")

    def test_duplicate_with_new_signature_is_still_duplicate(self):
        body = event("evt_resent")
        self.assertEqual(self.srv.post(body)[0], 200)
        # a redelivery is signed again with a later timestamp: same id, same answer
        status, data, _ = self.srv.post(body, signed_headers(body, ts=int(time.time()) + 1))
        self.assertEqual(data["status"], "duplicate")

    def test_sample_events_pretty_printed_are_accepted(self):
        names = sorted(n for n in os.listdir(EVENTS) if n.endswith(".json"))
        self.assertGreaterEqual(len(names), 20)
        for name in names:
            with open(os.path.join(EVENTS, name), "rb") as f:
                body = f.read()
            status, data, _ = self.srv.post(body)
            self.assertEqual(status, 200, (name, data))
            self.assertEqual(data["status"], "accepted", name)
        self.assertEqual(len(self.srv.rows()), len(names))

    def test_unicode_escapes_signed_over_raw_bytes(self):
        body = b'{"id":"evt_caf\\u00e9","type":"ticketing.comment.added","integration":{"id":"i","type":"jira"},"data":{"text":"caf\\u00e9"}}'
        status, data, _ = self.srv.post(body)
        self.assertEqual(status, 200, data)
        self.assertEqual(data["id"], "evt_caf\u00e9")
        stored = self.srv.rows()[0][2]
        self.assertIn("\\u00e9", stored)  # not re-serialised

    def test_not_found_and_method(self):
        body = event()
        for path in ("/", "/webhooks/unizox", "/webhooks", "/webhooks/unizo/", "/webhooks/unizo/X",
                     "/webhooks/unizo/a/b", "/webhooks/unizo/a.b"):
            status, data, _ = self.srv.post(body, path=path)
            self.assertEqual(status, 404, path)
            self.assertEqual(data["error"], "not_found")
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            status, data, r = self.srv.post(body, method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(r.getheader("allow"), "POST")
            self.assertEqual(data["error"], "method_not_allowed")

    def test_timestamp_window(self):
        body = event()
        now = int(time.time())
        cases = [
            ({"x-unizo-timestamp": None}, "missing_timestamp"),
            ({"x-unizo-timestamp": ""}, "missing_timestamp"),
            ({"x-unizo-timestamp": "yesterday"}, "stale_timestamp"),
            ({"x-unizo-timestamp": str(now - 400)}, "stale_timestamp"),
            ({"x-unizo-timestamp": str(now + 400)}, "stale_timestamp"),
            ({"x-unizo-timestamp": "-1"}, "stale_timestamp"),
            ({"x-unizo-timestamp": "99999999999999999999999999"}, "stale_timestamp"),
            ({"x-unizo-timestamp": str(now * 1000)}, "stale_timestamp"),
        ]
        for override, code in cases:
            ts = override["x-unizo-timestamp"]
            h = signed_headers(body, ts=ts if ts else now)
            if ts is None:
                del h["x-unizo-timestamp"]
            else:
                h["x-unizo-timestamp"] = ts
            status, data, _ = self.srv.post(body, h)
            self.assertEqual((status, data["error"]), (401, code), override)
            self.assertTrue(data["detail"])
        # inside the window, both directions, signed with that timestamp
        for ts in (now - 280, now + 280):
            b = event()
            self.assertEqual(self.srv.post(b, signed_headers(b, ts=ts))[0], 200)

    def test_signature_forms_and_rotation(self):
        now = int(time.time())
        forms = ["%s", "v1=%s", "sha256=%s"]
        for form in forms:
            body = event()
            ts, sig = sign(body, now, form=form)
            h = {"content-type": "application/json", "x-unizo-timestamp": ts, "x-unizo-signature": sig}
            self.assertEqual(self.srv.post(body, h)[0], 200, form)
            body = event()
            ts, sig = sign(body, now, form=form)
            h["x-unizo-signature"] = sig.upper() if form == "%s" else sig.split("=")[0] + "=" + sig.split("=")[1].upper()
            self.assertEqual(self.srv.post(body, h)[0], 200, form + " upper")
        # several values, one right
        body = event()
        ts, good = sign(body, now)
        _, bad = sign(body, now, secret="nope")
        for joined in (bad + "," + good, bad + " " + good, good + ", " + bad):
            h = {"content-type": "application/json", "x-unizo-timestamp": ts, "x-unizo-signature": joined}
            status, data, _ = self.srv.post(body, h)
            self.assertEqual(status, 200, joined)
        # the old secret still verifies (receiver-side rotation)
        body = event()
        self.assertEqual(self.srv.post(body, signed_headers(body, secret=OLD_SECRET))[0], 200)

    def test_signature_rejections(self):
        body = event()
        ts, good = sign(body)
        hex_ = good[3:]
        body_only = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        SENSITIVE.add(body_only)
        cases = [
            (None, "missing_signature"),
            ("", "invalid_signature"),
            ("v1=" + hex_[:-1], "invalid_signature"),
            ("v1=" + hex_ + "0", "invalid_signature"),
            ("v1=" + "z" * 64, "invalid_signature"),
            ("v2=" + hex_, "invalid_signature"),
            # wrong in one hex digit only: the last, the middle (a partial compare passes these)
            ("v1=" + hex_[:-1] + ("0" if hex_[-1] != "0" else "1"), "invalid_signature"),
            ("v1=" + hex_[:32] + ("0" if hex_[32] != "0" else "1") + hex_[33:], "invalid_signature"),
            (sign(body, secret="wrong")[1], "invalid_signature"),
            # over the body alone, sent with a fresh timestamp: in the default timestamp.body mode
            # that would let a captured body be replayed under any new time
            ("v1=" + body_only, "invalid_signature"),
            (sign(body, ts=int(ts) - 1)[1], "invalid_signature"),  # signed for another time
        ]
        for sig, code in cases:
            h = {"content-type": "application/json", "x-unizo-timestamp": ts}
            if sig is not None:
                h["x-unizo-signature"] = sig
            status, data, _ = self.srv.post(body, h)
            self.assertEqual((status, data["error"]), (401, code), sig)
        # a body changed after signing
        h = signed_headers(body)
        status, data, _ = self.srv.post(body.replace(b"github", b"gitlab"), h)
        self.assertEqual((status, data["error"]), (401, "invalid_signature"))
        # re-serialised JSON does not verify
        pretty = json.dumps(json.loads(body), indent=2).encode()
        self.assertEqual(self.srv.post(pretty, h)[0], 401)
        self.assertEqual(self.srv.rows(), [])

    def test_content_type(self):
        for ct, ok in CONTENT_TYPES:
            b = event()
            h = signed_headers(b)
            if ct is None:
                del h["content-type"]
            else:
                h["content-type"] = ct
            status, data, _ = self.srv.post(b, h)
            if ok:
                self.assertEqual((status, data["status"]), (200, "accepted"), ct)
            else:
                # authentic all the same: kept, and said why
                self.assertEqual((status, data["status"]), (200, "quarantined"), ct)
                self.assertIn("content-type must be application/json", data["detail"])
                self.assertEqual(self.srv.rows("SELECT state FROM events WHERE id = ?", (data["id"],)),
                                 [("quarantined",)])

    def test_bad_bodies_are_quarantined_with_the_reason(self):
        for body, code, detail in BAD_BODIES:
            status, data, _ = self.srv.post(body)
            self.assertEqual((status, data["status"]), (200, "quarantined"), body[:60])
            self.assertIn(detail, data["detail"])
            rows = self.srv.rows("SELECT state, reason, CAST(body AS BLOB) FROM events WHERE id = ?",
                                 (data["id"],))
            self.assertEqual(rows[0][0], "quarantined")
            self.assertIn(detail, rows[0][1])
            self.assertEqual(rows[0][2], body)  # byte for byte, even when it is not UTF-8
        self.assertEqual(self.srv.rows("SELECT count(*) FROM jobs"), [(0,)])
        # what is routable now is accepted: the id and the integration are not required any more
        for body in (b'{"type":"a","integration":{"id":"i","type":"t"},"data":{}}',
                     b'{"id":"x_noint","type":"a","data":{}}', b'{"id":"x_nodata","type":"a"}'):
            status, data, _ = self.srv.post(body)
            self.assertEqual((status, data["status"]), (200, "accepted"), body)
        rc, out, _ = self.srv.cli("events", "--status", "quarantined")
        self.assertEqual(rc, 0)
        self.assertEqual(len([l for l in out.splitlines() if "quarantined" in l]), len(BAD_BODIES))

    def test_body_cap(self):
        cap = 64 * 1024
        def padded(n):
            base = event("evt_cap_%d" % n)
            obj = json.loads(base)
            obj["data"]["pad"] = ""
            raw = json.dumps(obj).encode()
            obj["data"]["pad"] = "x" * (n - len(raw))
            out = json.dumps(obj).encode()
            self.assertEqual(len(out), n)
            return out
        status, data, _ = self.srv.post(padded(cap))
        self.assertEqual(status, 200, data)
        status, data, _ = self.srv.post(padded(cap + 1))
        self.assertEqual((status, data["error"]), (413, "too_large"))
        # far over the cap: refused by the HTTP layer before the body is read
        big = b"x" * (4 * cap)
        status, _, _ = self.srv.post(big, signed_headers(big))
        self.assertEqual(status, 413)

    def test_error_keeps_connection_alive(self):
        body = event("evt_keepalive")
        bad = http_request("POST", "/webhooks/unizo", body,
                           {"content-type": "application/json", "x-unizo-timestamp": str(int(time.time())),
                            "x-unizo-signature": "v1=" + "0" * 64})
        good = http_request("POST", "/webhooks/unizo", body, signed_headers(body))
        notfound = http_request("GET", "/nope", b"", {})
        out = raw_exchange(self.srv.port, bad + notfound + good, expect_responses=3)
        self.assertEqual([o[0] for o in out], [401, 404, 200])
        self.assertEqual(json.loads(out[0][2])["error"], "invalid_signature")
        self.assertEqual(json.loads(out[2][2]), {"status": "accepted", "id": "evt_keepalive"})

    def test_secret_and_signature_never_logged(self):
        body = event("evt_log")
        h = signed_headers(body)
        self.srv.post(body, h)
        h2 = dict(h, **{"x-unizo-signature": "v1=" + "ab" * 32})
        self.srv.post(event(), h2)
        time.sleep(0.2)
        log = self.srv.log()
        self.assertIn("evt_log", log)  # the request line is there...
        self.assertNotIn(h["x-unizo-signature"][3:], log)  # ...without the signature
        self.assertNotIn("ab" * 32, log)


class AllowList(ServerTest):
    server_args = {"webhook_extra": 'allow = { "203.0.113.0/24", "2001:db8::/32" }, '
                                    'trusted_proxies = { "127.0.0.1/32" }'}

    def test_forbidden_ip_before_anything_else(self):
        body = event()
        status, data, _ = self.srv.post(body, {})  # no signature either: 403 comes first
        self.assertEqual((status, data["error"]), (403, "forbidden_ip"))
        self.assertIn("127.0.0.1", data["detail"])

    def test_forwarded_for_from_trusted_proxy(self):
        body = event()
        h = dict(signed_headers(body), **{"x-forwarded-for": "198.51.100.1, 203.0.113.9"})
        self.assertEqual(self.srv.post(body, h)[0], 200)
        b2 = event()
        h = dict(signed_headers(b2), **{"x-forwarded-for": "2001:db8::7"})
        self.assertEqual(self.srv.post(b2, h)[0], 200)
        b3 = event()
        h = dict(signed_headers(b3), **{"x-forwarded-for": "198.51.100.1"})
        status, data, _ = self.srv.post(b3, h)
        self.assertEqual((status, data["error"]), (403, "forbidden_ip"))


    def test_every_forwarded_for_line_counts_in_order(self):
        # the client forges a line, the trusted proxy appends the real address as a line of its own:
        # read as one list, right to left, the real address decides
        body = event()
        h = signed_headers(body)
        h["X-Forwarded-For"] = "203.0.113.9"
        raw = http_request("POST", "/webhooks/unizo", body, h).replace(
            b"\r\n\r\n", b"\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n", 1)
        (status, _, data), = raw_exchange(self.srv.port, raw)
        self.assertEqual((status, json.loads(data)["error"]), (403, "forbidden_ip"))
        self.assertIn("198.51.100.1", json.loads(data)["detail"])
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(0,)])
        # and the other way round the real client is allowed
        body = event()
        h = signed_headers(body)
        h["X-Forwarded-For"] = "198.51.100.1"
        raw = http_request("POST", "/webhooks/unizo", body, h).replace(
            b"\r\n\r\n", b"\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n", 1)
        (status, _, _), = raw_exchange(self.srv.port, raw)
        self.assertEqual(status, 200)


class UntrustedProxy(ServerTest):
    server_args = {"webhook_extra": 'allow = { "203.0.113.0/24" }, trusted_proxies = { "10.0.0.0/8" }'}

    def test_forwarded_for_ignored_from_untrusted_peer(self):
        # the direct peer (127.0.0.1) is neither allowed nor a trusted proxy: its connection is
        # closed as it is accepted, so the forged X-Forwarded-For is never even read
        body = event()
        h = dict(signed_headers(body), **{"x-forwarded-for": "203.0.113.9"})
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
            self.srv.post(body, h)
        self.assertEqual(self.srv.metric("switchyard_connections_refused_total", '{reason="not_allowed"}'), 1)
        self.assertEqual(self.srv.rows("SELECT count(*) FROM events"), [(0,)])


CONTENT_TYPES = [("application/json", True), ("application/json; charset=utf-8", True),
                 ("Application/JSON", True), ("application/vnd.unizo+json", True),
                 ("text/plain", False), ("application/x-www-form-urlencoded", False),
                 (None, False), ("application/jsonp", False)]

BAD_BODIES = [
    (b"{not json", "invalid_json", "line 1"),
    (b"", "invalid_json", ""),
    (b'{"id":"\xff"}', "invalid_json", ""),
    (b"[1]", "invalid_event", "JSON object"),
    (b'{"id":"x1","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event", "no event type"),
    (b'{"id":"x2","type":"a b","integration":{"id":"i","type":"t"},"data":{}}', "invalid_event", "'type'"),
    (b'{"id":"x3","type":"a","integration":{"id":"i","type":7},"data":{}}', "invalid_event",
     "'integration.type'"),
    (b'{"id":"x4","type":"a","integration":{"id":"i","type":"t"},"data":[]}', "invalid_event", "'data'"),
    (b'{"id":"' + b"x" * 256 + b'","type":"a","integration":{"id":"i","type":"t"},"data":{}}',
     "invalid_event", "'id'"),
    (b'{"id":"x5","type":"a","integration":{"id":"i","type":"t"},"data":' + b"[" * 3000 + b"]" * 3000 + b"}",
     "invalid_json", "depth"),
]


class RejectInvalid(ServerTest):
    """webhook.on_invalid = "reject": what would be quarantined is refused, as before, and not kept."""
    server_args = {"webhook_extra": 'on_invalid = "reject"'}

    def test_bad_bodies_get_400_naming_the_field(self):
        for body, code, detail in BAD_BODIES:
            status, data, _ = self.srv.post(body)
            self.assertEqual((status, data["error"]), (400, code), body[:60])
            self.assertIn(detail, data["detail"])
        self.assertEqual(self.srv.rows(), [])

    def test_content_type_gets_415(self):
        for ct, ok in CONTENT_TYPES:
            b = event()
            h = signed_headers(b)
            if ct is None:
                del h["content-type"]
            else:
                h["content-type"] = ct
            status, data, _ = self.srv.post(b, h)
            if ok:
                self.assertEqual(status, 200, ct)
            else:
                self.assertEqual((status, data["error"]), (415, "unsupported_media_type"), ct)


class OrderOfChecks(ServerTest):
    def test_size_before_auth_and_auth_before_body(self):
        big = b"{" + b"x" * (70 * 1024)
        status, data, _ = self.srv.post(big, {"content-type": "text/plain"})
        self.assertEqual(data["error"], "too_large")
        # unauthenticated garbage learns nothing about its body
        status, data, _ = self.srv.post(b"{garbage", {"content-type": "text/plain"})
        self.assertEqual(data["error"], "missing_timestamp")
        ts, sig = sign(b"{garbage")
        status, data, _ = self.srv.post(b"{garbage", {"content-type": "text/plain",
                                                      "x-unizo-timestamp": ts, "x-unizo-signature": sig})
        # authentic: only now is the body looked at, and it is kept however it looks
        self.assertEqual((status, data["status"]), (200, "quarantined"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
