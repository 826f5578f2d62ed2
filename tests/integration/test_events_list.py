"""The event list's filters and paging (GET /admin/events, `switchyard events`): on a store
much larger than one page's window, a rare event is still found, page after page, and an id
at once; bad filters are refused with a message; per-rule p99 shows in /admin/rules."""
import json
import sqlite3
import subprocess
import time
import unittest
import urllib.parse

from harness import BIN, Server, event

RULE = 'rule { name = "r", on = "scm.*", run = function(ev) end }\n'
BULK = 45000  # more than two windows of the SQLite list (20,000 events each)


def fill(db_path, n, rare_id):
    """The oldest event is the one rare one; n ordinary ones after it, as a busy store holds."""
    db = sqlite3.connect(db_path, timeout=30)
    now = int(time.time() * 1000)
    rows = [(rare_id, "rare.thing.happened", "pagerduty", now - 3600_000, "{}",
             json.dumps({"id": rare_id, "note": "needle-7f3a"}), "unrouted", "incidents")]
    rows += [("bulk_%06d" % i, "bulk.item.created", "github", now - 3000_000 + i, "{}",
              json.dumps({"id": "bulk_%06d" % i, "note": "hay"}), "unrouted", None) for i in range(n)]
    db.executemany("INSERT INTO events (id, type, integration, received_at, headers, body, state, "
                   "category) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()


class Paging(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(rules={"r.lua": RULE}).start()
        # rows written beside the server, without their id hash: the next start hashes them
        fill(cls.srv.db, BULK, "evt_rare_1")
        assert cls.srv.stop() == 0
        cls.srv.start()
        assert "stored event ids loaded events=%d" % (BULK + 1) in cls.srv.log(), cls.srv.log()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def get(self, **params):
        status, body, _ = self.srv.admin("/admin/events?" + urllib.parse.urlencode(params))
        return status, json.loads(body)

    def pages(self, first=None, **params):
        """Every page of a filter (or the first ones): [(ids, next)], following 'next'."""
        out, cursor = [], None
        while len(out) < (first or 20):
            p = dict(params, **({"cursor": cursor} if cursor else {}))
            status, body = self.get(**p)
            self.assertEqual(status, 200, body)
            out.append(([e["id"] for e in body["events"]], body["next"]))
            cursor = body["next"]
            if cursor is None:
                return out
        if first:
            return out
        self.fail("the list did not end")

    def test_a_rare_type_is_found_by_following_the_cursor(self):
        pages = self.pages(type="rare.*")
        # each page reads at most its window: the first ones hold nothing but say where to go on
        self.assertEqual(len(pages), 3, pages)
        self.assertEqual([p[0] for p in pages], [[], [], ["evt_rare_1"]])
        self.assertIsNotNone(pages[0][1])
        self.assertIsNone(pages[-1][1])

    def test_text_in_a_body_and_an_id(self):
        self.assertEqual([p[0] for p in self.pages(q="needle-7f3a")], [[], [], ["evt_rare_1"]])
        # an id is looked up by its key: one page, whatever the store's size
        self.assertEqual(self.pages(q="evt_rare_1"), [(["evt_rare_1"], None)])
        self.assertEqual(self.pages(q="evt_rare_1", type="bulk.*")[-1], ([], None))
        # and a delivery of it again is a duplicate
        self.assertEqual(self.srv.post(event("evt_rare_1"))[1]["status"], "duplicate")
        self.assertEqual(self.srv.post(event("bulk_000007"))[1]["status"], "duplicate")

    def test_dense_filters_fill_pages_newest_first_and_pages_do_not_overlap(self):
        pages = self.pages(first=3, type="bulk.*", integration="github", limit=200)
        ids = [i for p in pages for i in p[0]]
        self.assertEqual(ids, ["bulk_%06d" % i for i in range(BULK - 1, BULK - 601, -1)])
        status, body = self.get(integration="pagerduty", category="incidents", state="unrouted")
        self.assertEqual(status, 200)
        self.assertEqual([e["id"] for e in body["events"]], [])  # beyond the first window
        status, body = self.get(since="90m", until="70m", limit=5)
        self.assertEqual(status, 200)
        # nothing was received then (the rare one an hour ago, the bulk after): one empty page
        self.assertEqual((body["events"], body["next"]), ([], None))

    def test_a_time_range_starts_and_ends_where_its_events_are(self):
        # the rare one is an hour old, beyond two windows of newer events: a range around it
        # is one page, read from its place in the store, with nothing to go on to
        (at,), = self.srv.rows("SELECT received_at FROM events WHERE id = 'evt_rare_1'")
        self.assertEqual(self.pages(since=at - 1000, until=at + 1000), [(["evt_rare_1"], None)])
        # and the bulk's first ten milliseconds, newest first
        (first,), = self.srv.rows("SELECT received_at FROM events WHERE id = 'bulk_000000'")
        pages = self.pages(since=first, until=first + 10, limit=4)
        self.assertEqual([i for p in pages for i in p[0]], ["bulk_%06d" % i for i in range(9, -1, -1)])
        self.assertIsNone(pages[-1][1])

    def test_bad_filters_are_refused_with_what_is_wrong(self):
        for params, word in [({"state": "lost"}, "state"), ({"type": "scm..x"}, "pattern"),
                             ({"limit": "500"}, "limit"), ({"cursor": "zzz"}, "cursor"),
                             ({"q": "x" * 300}, "too long"), ({"since": "yesterday"}, "since"),
                             ({"since": "2026-12-02", "until": "2026-12-01"}, "time range")]:
            status, body = self.get(**params)
            self.assertEqual(status, 400, params)
            self.assertEqual(body["error"], "invalid_request")
            self.assertIn(word, body["detail"], params)

    def test_the_cli_follows_the_pages(self):
        p = subprocess.run([BIN, "events", "-c", self.srv.config, "--type", "rare.*", "--json"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([e["id"] for e in json.loads(p.stdout)], ["evt_rare_1"])
        p = subprocess.run([BIN, "events", "-c", self.srv.config, "--search", "needle-7f3a"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"evt_rare_1", p.stdout)
        p = subprocess.run([BIN, "events", "-c", self.srv.config, "--since", "yesterday"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--since 'yesterday' is not a time", p.stderr)
        p = subprocess.run([BIN, "events", "-c", self.srv.config, "--status", "lost"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"unknown state 'lost'", p.stderr)


class RuleStats(unittest.TestCase):
    def test_p99_appears_once_a_rule_ran(self):
        srv = Server(rules={"r.lua": RULE}).start()

        def admin(path):
            status, body, _ = srv.admin(path)
            return status, json.loads(body)
        try:
            status, body = admin("/admin/rules")
            self.assertIsNone(body["rules"][0]["p99_ms"])
            for i in range(5):
                self.assertEqual(srv.post(event("evt_p99_%d" % i))[0], 200)
            srv.wait_for(lambda: srv.rows("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 5)
            status, body = admin("/admin/rules")
            r = body["rules"][0]
            self.assertEqual(r["attempts"]["done"], 5)
            self.assertGreater(r["p99_ms"], 0)
            self.assertLess(r["p99_ms"], 10000)
            # by integration and category too, on real deliveries
            status, body = admin("/admin/events?integration=github&type=scm.pull_request.*")
            self.assertEqual(len(body["events"]), 5)
            self.assertEqual(body["events"][0]["jobs"], {"done": 1})
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
