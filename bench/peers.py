"""Peer receivers that bench/run.py measures switchyard against.

Each peer function writes whatever config the peer needs under WORKDIR and
returns (argv, env, cwd) to start it in the foreground, listening on
127.0.0.1:PORT; env holds only the variables to add to os.environ.

    express(mode, workdir, port, secret)  reference Express receiver, mode "json" or "raw"
    webhook(workdir, port, secret)        adnanh/webhook, POST /hooks/unizo, body-only HMAC
    nginx(workdir, port)                  nginx "return 200" (a do-nothing ceiling)
    install()                             apt/npm installs of whatever is missing

webhook checks a signature over the body alone, so its requests need the extra
header from `gen.py ... --path /hooks/unizo --body-sig WEBHOOK_SIG_HEADER`.
"""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
EXPRESS_DIR = os.path.join(PEERS, "express")

WEBHOOK_PATH = "/hooks/unizo"
WEBHOOK_SIG_HEADER = "x-unizo-body-signature"

# command -> Debian package that provides it
APT = {"node": "nodejs", "npm": "npm", "webhook": "webhook", "nginx": "nginx"}


def _which(cmd):
    return shutil.which(cmd) or (os.path.exists("/usr/sbin/" + cmd) and "/usr/sbin/" + cmd) or None


def express(mode, workdir, port, secret):
    """Express reference receiver on POST /webhooks/unizo (workdir is unused)."""
    if mode not in ("json", "raw"):
        raise ValueError("express mode must be 'json' or 'raw'")
    argv = [_which("node") or "node", os.path.join(EXPRESS_DIR, "server.js"), mode, str(port)]
    env = {"SECRET": secret, "HOST": "127.0.0.1", "NODE_ENV": "production"}
    return argv, env, EXPRESS_DIR


def webhook(workdir, port, secret):
    """adnanh/webhook with hook "unizo": HMAC-SHA256 of the raw body in WEBHOOK_SIG_HEADER,
    runs /bin/true without waiting for it; 200 on a match, 401 on a bad or missing signature."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(PEERS, "webhook", "hooks.json.in")) as f:
        text = f.read()
    text = text.replace("@SECRET@", json.dumps(secret)[1:-1]).replace("@SIG_HEADER@", WEBHOOK_SIG_HEADER)
    hooks = os.path.join(workdir, "hooks.json")
    with open(hooks, "w") as f:
        f.write(text)
    argv = [_which("webhook") or "webhook", "-hooks", hooks, "-ip", "127.0.0.1", "-port", str(port)]
    return argv, {}, workdir


def nginx(workdir, port):
    """nginx answering 200 to everything; pid, logs and temp files under workdir."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(PEERS, "nginx.conf.in")) as f:
        text = f.read()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text.replace("@PORT@", str(port)).replace("@WORKDIR@", workdir))
    argv = [_which("nginx") or "/usr/sbin/nginx", "-p", workdir, "-c", conf,
            "-e", os.path.join(workdir, "error.log")]
    return argv, {}, workdir


def _apt_install(pkgs):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + pkgs
    # keep package scripts from starting services (nginx would take port 80)
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        quiet = {"env": env, "stdout": subprocess.DEVNULL}
        if subprocess.run(cmd, **quiet).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True, **quiet)
            subprocess.run(cmd, check=True, **quiet)
    finally:
        if made_policy:
            os.unlink(policy)
    if "nginx" in pkgs:
        _stop_system_nginx()


def _stop_system_nginx():
    """Stop and disable a packaged nginx service if one got started anyway."""
    if os.path.isdir("/run/systemd/system") and shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--now", "nginx"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif os.path.exists("/etc/init.d/nginx"):
        subprocess.run(["/etc/init.d/nginx", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if shutil.which("update-rc.d"):
            subprocess.run(["update-rc.d", "nginx", "disable"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def install(tolerate=False):
    """Install what the peers need and is missing: Debian packages, then Express's node_modules.
    With tolerate (the smoke run), a failed npm install is reported and Express left out:
    returns the set of peers that could not be installed ({"express"} or empty)."""
    missing = [pkg for cmd, pkg in APT.items() if not _which(cmd)]
    if missing:
        print("peers: apt-get install " + " ".join(missing), file=sys.stderr)
        _apt_install(missing)
    if not os.path.isdir(os.path.join(EXPRESS_DIR, "node_modules")):
        print("peers: npm ci in " + EXPRESS_DIR, file=sys.stderr)
        rc = subprocess.run(["npm", "ci", "--omit=dev", "--no-audit", "--no-fund"], cwd=EXPRESS_DIR).returncode
        if rc != 0:
            hint = ("npm ci failed (exit %d). Behind a TLS-intercepting proxy, point NODE_EXTRA_CA_CERTS "
                    "(or npm's cafile) at its CA certificate." % rc)
            if not tolerate:
                raise RuntimeError(hint)
            print("peers: " + hint + " The smoke run goes on without the Express peers.", file=sys.stderr)
            return {"express"}
    return set()


if __name__ == "__main__":
    install()
