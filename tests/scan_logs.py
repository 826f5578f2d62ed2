#!/usr/bin/env python3
"""Grep every server log of a full test run for the secrets, API keys, admin tokens and
signatures the tests used (tests/integration/harness.py keeps both in SY_TEST_LOG_DIR).

usage: scan_logs.py --reset DIR     empty DIR before the suite (a CTest fixture setup)
       scan_logs.py DIR             scan after the suite; exit 1 on any finding
       scan_logs.py --self-test     plant one of each kind and check that the scan finds it

Signatures are matched as any run of 64 hex digits, in either case, so a signature logged
in upper case or inside other text is still found; a 64-hex-digit value the tests did not
record (one signed by the CLI, say) is a finding too, since nothing legitimate logs one.
The scan refuses to pass when there is no log or no signature at all: the run did not
happen. (A partial run, ctest -R, scans what it ran.)
"""
import glob
import os
import re
import shutil
import sys
import tempfile

MIN_LOGS = 1
MIN_SIGNATURES = 1
HEX64 = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def scan(root, min_logs=MIN_LOGS, min_signatures=MIN_SIGNATURES):
    """Return (findings, summary)."""
    sensitive = set()
    for path in glob.glob(os.path.join(root, "sensitive-*.txt")):
        with open(path) as f:
            sensitive.update(line.rstrip("\n") for line in f if line.strip())
    signatures = {s for s in sensitive if re.fullmatch(r"[0-9a-f]{64}", s)}
    words = [s.encode() for s in sensitive - signatures]
    findings = []
    logs = sorted(glob.glob(os.path.join(root, "*.log")))
    lines = 0
    for path in logs:
        with open(path, "rb") as f:
            data = f.read()
        lines += data.count(b"\n")
        for w in words:
            if w in data:
                findings.append("%s: contains the secret/key/token %r" % (os.path.basename(path), w.decode()[:3] + "…"))
        for m in HEX64.finditer(data):
            if m.group(0).lower().decode() in signatures:
                findings.append("%s: contains a request signature" % os.path.basename(path))
            else:  # switchyard has no reason to log any SHA-256-sized hex value
                findings.append("%s: contains a signature-shaped value (64 hex digits)" % os.path.basename(path))
    summary = ("scanned %d server logs (%d lines) for %d secrets, keys and tokens and %d signatures"
               % (len(logs), lines, len(words), len(signatures)))
    if len(logs) < min_logs:
        findings.append("only %d logs in %s: the suite did not run (need %d)" % (len(logs), root, min_logs))
    if len(signatures) < min_signatures:
        findings.append("only %d signatures recorded: the suite did not run (need %d)" % (len(signatures), min_signatures))
    return findings, summary


def self_test():
    """The scan must find each planted kind; a clean log must pass."""
    sig = "ab" * 32
    root = tempfile.mkdtemp(prefix="sy-scan-")
    try:
        with open(os.path.join(root, "sensitive-1.txt"), "w") as f:
            f.write("planted-secret-123\nplanted-key-456\n%s\n" % sig)
        cases = {
            "clean": "ts=1 level=info msg=\"accepted\" id=evt_1\n",
            "secret": "msg=\"oops\" secret=planted-secret-123\n",
            "key": "apikey: planted-key-456\n",
            "signature upper case": "x-unizo-signature: v1=%s\n" % sig.upper(),
            "signature inside text": "sig=v1=%s,other\n" % sig,
            "unrecorded 64 hex digits": "sig=%s\n" % ("cd" * 32),
        }
        for name, text in cases.items():
            for old in glob.glob(os.path.join(root, "*.log")):
                os.remove(old)
            with open(os.path.join(root, "a.log"), "w") as f:
                f.write(text)
            findings, _ = scan(root, min_logs=1, min_signatures=1)
            if (name == "clean") != (not findings):
                print("self-test failed on %s: %s" % (name, findings or "nothing found"))
                return 1
        for old in glob.glob(os.path.join(root, "*.log")):
            os.remove(old)
        findings, _ = scan(root)
        if not any("did not run" in f for f in findings):
            print("self-test failed: too little input passed")
            return 1
    finally:
        shutil.rmtree(root)
    print("self-test passed: every planted kind was found, a clean log passed, an empty run failed")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) == 3 and argv[1] == "--reset":
        shutil.rmtree(argv[2], ignore_errors=True)
        os.makedirs(argv[2])
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    findings, summary = scan(argv[1])
    print(summary)
    for f in findings:
        print("FOUND " + f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
