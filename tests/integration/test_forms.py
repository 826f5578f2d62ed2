"""Every documented Unizo delivery form on the real binary: accepted, deduplicated on
redelivery, routed to the right rule with the right normalized fields; quarantine, listing
and replay; the signed payload forms."""
import hashlib
import hmac
import json
import time
import unittest
import uuid

from harness import SECRET, Server, ServerTest, sign
from test_redis import Redis

SEEN = """
local function seen(name, ev)
  log.info(("SAW %s id=%s type=%s cat=%s integ=%s/%s did=%s data=%s"):format(name, ev.id, ev.type,
    tostring(ev.category), tostring(ev.integration.type), tostring(ev.integration.id),
    tostring(ev.delivery_id), json.encode(ev.data or {})))
end
rule { name = "scm-dotted", on = "scm.*", run = function(ev) seen("scm-dotted", ev) end }
rule { name = "ticket-any", on = "ticket:*", run = function(ev) seen("ticket-any", ev) end }
rule { name = "created-anywhere", on = "*:created", run = function(ev) seen("created-anywhere", ev) end }
rule { name = "user-identity", on = "user:created", category = "identity",
       run = function(ev) seen("user-identity", ev) end }
rule { name = "user-ticketing", on = "user:created", category = "ticketing",
       run = function(ev) seen("user-ticketing", ev) end }
"""


def headers(body, event_type=None, delivery_id=None, ts=None, form="v1=%s", with_ts=True):
    h = {"content-type": "application/json"}
    if with_ts:
        ts, sig = sign(body, ts=ts, form=form)
        h["x-unizo-timestamp"] = ts
    else:
        sig = form % hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    h["x-unizo-signature"] = sig
    if event_type:
        h["x-unizo-event-type"] = event_type
    if delivery_id:
        h["x-unizo-delivery-id"] = delivery_id
    return h


def saw(srv, rule):
    return [l for l in srv.lines if "SAW %s " % rule in l]


class Forms(ServerTest):
    server_args = {"rules": {"seen.lua": SEEN}}

    def post_form(self, body, path="/webhooks/unizo", **kw):
        b = json.dumps(body).encode() if not isinstance(body, bytes) else body
        return self.srv.post(b, headers(b, **kw), path=path)

    def test_the_body_envelope_with_a_dotted_type(self):
        body = {"id": "evt_f_dot", "type": "scm.pull_request.created",
                "integration": {"id": "int_gh", "type": "github", "name": "GitHub"}, "data": {"n": 1}}
        self.assertEqual(self.post_form(body)[1], {"status": "accepted", "id": "evt_f_dot"})
        self.assertEqual(self.post_form(body)[1]["status"], "duplicate")
        self.srv.wait_for(lambda: saw(self.srv, "scm-dotted"))
        line = saw(self.srv, "scm-dotted")[0]
        self.assertIn("id=evt_f_dot type=scm.pull_request.created cat=scm integ=github/int_gh", line)
        # "*:created" takes a dotted creation too: the separators are alike. The rule's log line
        # comes before its job's outcome is committed, so wait for the rows, not the line
        self.srv.wait_for(lambda: self.srv.job_states("evt_f_dot") ==
                          {"scm-dotted": ("done", 1), "created-anywhere": ("done", 1)}, what="both jobs done")

    def test_headers_fill_in_what_the_body_lacks(self):
        did = str(uuid.uuid4())
        body = {"data": {"user": {"id": "u1"}}}
        status, data, _ = self.post_form(body, path="/webhooks/unizo/identity", event_type="user:created",
                                         delivery_id=did)
        self.assertEqual((status, data), (200, {"status": "accepted", "id": did}))
        # a redelivery carries the same delivery id: it is the same event
        status, data, _ = self.post_form(body, path="/webhooks/unizo/identity", event_type="user:created",
                                         delivery_id=did)
        self.assertEqual(data["status"], "duplicate")
        self.srv.wait_for(lambda: saw(self.srv, "user-identity") and saw(self.srv, "created-anywhere"))
        line = saw(self.srv, "user-identity")[0]
        self.assertIn("id=%s type=user:created cat=identity integ=nil/nil did=%s" % (did, did), line)
        self.assertIn('data={"user":{"id":"u1"}}', line)
        self.assertEqual(saw(self.srv, "user-ticketing"), [])  # the other category's rule
        rows = self.srv.rows("SELECT type, category, state FROM events WHERE id = ?", (did,))
        self.assertEqual(rows, [("user:created", "identity", "routed")])

    def test_the_category_tells_the_two_user_created_apart(self):
        for cat in ("ticketing", "identity"):
            body = {"id": "evt_f_user_" + cat, "type": "user:created", "data": {}}
            self.assertEqual(self.post_form(body, path="/webhooks/unizo/" + cat)[1]["status"], "accepted")
        self.srv.wait_for(lambda: saw(self.srv, "user-identity") and saw(self.srv, "user-ticketing"))
        self.assertEqual(len(saw(self.srv, "user-identity")), 1)
        self.assertIn("id=evt_f_user_identity", saw(self.srv, "user-identity")[0])
        self.assertEqual(len(saw(self.srv, "user-ticketing")), 1)
        self.assertIn("id=evt_f_user_ticketing", saw(self.srv, "user-ticketing")[0])

    def test_the_console_envelope(self):
        did = str(uuid.uuid4())
        body = {"event": "ticket:created", "timestamp": "2025-03-01T09:00:00Z",
                "source": {"type": "jira", "integration_id": "int_jira_9"}, "data": {"ticket": {"id": "ENG-7"}}}
        status, data, _ = self.post_form(body, path="/webhooks/unizo/ticketing", delivery_id=did)
        self.assertEqual((status, data["status"], data["id"]), (200, "accepted", did))
        self.srv.wait_for(lambda: saw(self.srv, "ticket-any") and saw(self.srv, "created-anywhere"))
        line = saw(self.srv, "ticket-any")[0]
        self.assertIn("type=ticket:created cat=ticketing integ=jira/int_jira_9 did=%s" % did, line)
        self.assertEqual(self.srv.rows("SELECT integration FROM events WHERE id = ?", (did,)), [("jira",)])
        status, body_, _ = self.srv.admin("/admin/events/" + did)
        shown = json.loads(body_)
        self.assertEqual(shown["normalized"]["integration"], {"id": "int_jira_9", "type": "jira"})
        self.assertEqual(shown["category"], "ticketing")

    def test_a_body_without_any_id_gets_a_stable_hash_id(self):
        body = b'{"type":"repository:created","data":{"name":"x"}}'
        status, data, _ = self.post_form(body)
        self.assertEqual(data["status"], "accepted")
        self.assertEqual(data["id"], "sha256:" + hashlib.sha256(body).hexdigest()[:32])
        self.assertEqual(self.post_form(body)[1]["status"], "duplicate")

    def test_quarantine_listing_and_replay(self):
        # authentic, but no type anywhere: kept, said why, listed
        body = {"id": "evt_f_q1", "data": {}}
        status, data, _ = self.post_form(body)
        self.assertEqual((status, data["status"], data["id"]), (200, "quarantined", "evt_f_q1"))
        self.assertIn("no event type", data["detail"])
        self.assertEqual(self.post_form(body)[1]["status"], "duplicate")
        # authentic, but sent as text/plain: kept too, and routable once replayed
        b = json.dumps({"id": "evt_f_q2", "type": "scm.push", "data": {}}).encode()
        h = headers(b)
        h["content-type"] = "text/plain"
        status, data, _ = self.srv.post(b, h)
        self.assertEqual(data["status"], "quarantined")
        self.assertEqual(self.srv.job_states("evt_f_q2"), {})
        rc, out, _ = self.srv.cli("events", "--status", "quarantined")
        self.assertIn("evt_f_q1", out)
        self.assertIn("evt_f_q2", out)
        status, listing, _ = self.srv.admin("/admin/events?status=quarantined")
        self.assertEqual({e["id"] for e in json.loads(listing)["events"]}, {"evt_f_q1", "evt_f_q2"})
        self.assertIn("content-type", [e for e in json.loads(listing)["events"] if e["id"] == "evt_f_q2"][0]["reason"])
        self.assertEqual(self.srv.metric("switchyard_webhook_requests_total", '{result="quarantined"}'), 2)
        # replay: normalized again; the first still has no type, the second routes now
        status, r, _ = self.srv.admin("/admin/events/evt_f_q1/replay", method="POST")
        self.assertEqual(json.loads(r), {"id": "evt_f_q1", "replayed": 0,
                                         "quarantined": {"routed": False, "reason": json.loads(r)["quarantined"]["reason"]}})
        self.assertIn("no event type", json.loads(r)["quarantined"]["reason"])
        rc, out, _ = self.srv.cli("replay", "evt_f_q2")
        self.assertEqual(rc, 0, out)
        self.srv.wait_for(lambda: self.srv.job_states("evt_f_q2") == {"scm-dotted": ("done", 1)}, what="routed")
        self.assertEqual(self.srv.rows("SELECT state, reason FROM events WHERE id = 'evt_f_q2'"), [("routed", None)])
        self.assertIn("type=scm.push cat=scm", saw(self.srv, "scm-dotted")[0])
        # a second replay of the now routed event finds nothing to do and runs nothing again
        status, r, _ = self.srv.admin("/admin/events/evt_f_q2/replay", method="POST")
        self.assertEqual(json.loads(r), {"id": "evt_f_q2", "replayed": 0})
        self.assertEqual(self.srv.job_states("evt_f_q2"), {"scm-dotted": ("done", 1)})
        self.assertEqual(len(saw(self.srv, "scm-dotted")), 1)


class BodyOnlySignatures(ServerTest):
    server_args = {"rules": {"seen.lua": SEEN}, "webhook_extra": 'signed_payload = "body"'}

    def test_the_body_alone_is_signed_and_a_sent_timestamp_is_still_checked(self):
        body = json.dumps({"id": "evt_f_b1", "type": "scm.push", "data": {}}).encode()
        # the Unizo sample subscriber's form: sha256=<hex of the body>, no timestamp
        status, data, _ = self.srv.post(body, headers(body, with_ts=False, form="sha256=%s"))
        self.assertEqual((status, data["status"]), (200, "accepted"))
        b2 = json.dumps({"id": "evt_f_b2", "type": "scm.push", "data": {}}).encode()
        h = headers(b2, with_ts=False)
        h["x-unizo-timestamp"] = str(int(time.time()) - 3600)
        status, data, _ = self.srv.post(b2, h)
        self.assertEqual((status, data["error"]), (401, "stale_timestamp"))
        # a timestamp.body signature is not the body's: refused in this mode
        b3 = json.dumps({"id": "evt_f_b3", "type": "scm.push", "data": {}}).encode()
        status, data, _ = self.srv.post(b3, headers(b3))
        self.assertEqual((status, data["error"]), (401, "invalid_signature"))
        self.assertEqual(self.srv.rows("SELECT id FROM events ORDER BY seq"), [("evt_f_b1",)])


class EitherSignature(ServerTest):
    server_args = {"webhook_extra": 'signed_payload = "either"'}

    def test_both_forms_during_a_migration(self):
        b1 = json.dumps({"id": "evt_f_e1", "type": "scm.push", "data": {}}).encode()
        self.assertEqual(self.srv.post(b1, headers(b1))[1]["status"], "accepted")
        b2 = json.dumps({"id": "evt_f_e2", "type": "scm.push", "data": {}}).encode()
        self.assertEqual(self.srv.post(b2, headers(b2, with_ts=False))[1]["status"], "accepted")
        b3 = json.dumps({"id": "evt_f_e3", "type": "scm.push", "data": {}}).encode()
        h = headers(b3, with_ts=False)
        h["x-unizo-signature"] = "v1=" + "0" * 64
        self.assertEqual(self.srv.post(b3, h)[1]["error"], "invalid_signature")
        # the default keeps requiring the timestamp
        default = Server().start()
        status, data, _ = default.post(b2, headers(b2, with_ts=False))
        self.assertEqual((status, data["error"]), (401, "missing_timestamp"))
        self.assertEqual(default.stop(), 0)


class RedisQuarantine(unittest.TestCase):
    def test_quarantine_and_replay_on_redis(self):
        redis = Redis()
        srv = Server(rules={"seen.lua": SEEN},
                     config_extra=f'store = {{ url = "redis://127.0.0.1:{redis.port}/0", instance = "q" }}').start()
        did = str(uuid.uuid4())
        b = json.dumps({"data": {}}).encode()
        h = headers(b, delivery_id=did, event_type="user:created")
        h["content-type"] = "text/plain"
        status, data, _ = srv.post(b, h, path="/webhooks/unizo/identity")
        self.assertEqual((data["status"], data["id"]), ("quarantined", did))
        self.assertEqual(redis.cmd("HGET", "switchyard:ev:" + did, "state"), "quarantined")
        rc, out, _ = srv.cli("events", "--status", "quarantined")
        self.assertIn(did, out)
        status, r, _ = srv.admin("/admin/events/%s/replay" % did, method="POST")
        self.assertEqual(json.loads(r)["quarantined"], {"routed": True})
        srv.wait_for(lambda: saw(srv, "user-identity"), what="routed on Redis")
        self.assertIn("type=user:created cat=identity", saw(srv, "user-identity")[0])
        self.assertEqual(redis.cmd("HGET", "switchyard:ev:" + did, "state"), "routed")
        # a second replay finds nothing to do
        status, r, _ = srv.admin("/admin/events/%s/replay" % did, method="POST")
        self.assertEqual(json.loads(r), {"id": did, "replayed": 0})
        self.assertEqual(srv.stop(), 0)
        redis.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
