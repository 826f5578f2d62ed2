#!/usr/bin/env bash
# The Debian packages in a fresh minimal Debian 12 root, as a newcomer's machine would be:
#   tests/package/test_deb.sh DEB_DIR
# DEB_DIR holds switchyard_*.deb and switchyard-dev_*.deb (./scripts/package). Run as root:
# it debootstraps a root (SY_DEBIAN_MIRROR, default deb.debian.org), installs the package with
# apt, and checks what the package promises: exactly the runtime libraries pulled in, the
# config passing `check` once the secret is set in the environment file, the server running
# as the system user with the unit's paths and storing a signed delivery under
# /var/lib/switchyard, a plugin built against switchyard-dev with pkg-config loading and
# running, the unit enabled and started only once configured, `apt remove` stopping it and
# keeping the store, `apt purge` removing the config and keeping the store unless asked.
# The root has no systemd: the server is started the way the unit starts it, and
# deb-systemd-invoke and systemctl are stand-ins that record what the maintainer scripts ask.
set -euo pipefail
debs=$(cd "${1:?usage: test_deb.sh DEB_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mirror=${SY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/sy-deb-root.XXXXXX)
chmod 755 "$root" # a root file system's /: the system user must get through it
failures=0
checks=0

cleanup() {
    for m in "$root/dev" "$root/proc"; do
        if mountpoint -q "$m"; then
            umount -R -l "$m"
        fi
    done
    if [[ -n "${SY_KEEP_ROOT:-}" ]]; then
        echo "the root is kept in $root"
    else
        rm -rf "$root"
    fi
}
trap cleanup EXIT

check() { # check WHAT COMMAND...: one assertion, printed
    local what=$1
    shift
    checks=$((checks + 1))
    if "$@"; then
        echo "ok   $what"
    else
        echo "FAIL $what"
        failures=$((failures + 1))
    fi
}

in_root() { # a command in the root, with the usual PATH
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

echo "== a minimal Debian 12 root ($mirror)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t proc proc "$root/proc"
echo "127.0.0.1 localhost" >"$root/etc/hosts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/tmp/debs"
cp "$debs"/switchyard_*.deb "$debs"/switchyard-dev_*.deb "$root/tmp/debs/"
cp "$repo/examples/events/scm.pull_request.created.json" "$root/tmp/event.json"
in_root apt-get update -qq

# a stand-in for systemctl (the root has no systemd): with /run/systemd/system present the
# maintainer scripts and deb-systemd-invoke call it, and it records what they ask
mkdir -p "$root/run/systemd/system"
printf '#!/bin/sh\necho "systemctl $*" >>/tmp/systemd-calls\n' >"$root/usr/sbin/systemctl"
chmod +x "$root/usr/sbin/systemctl"

echo "== apt install ./switchyard_*.deb"
in_root dpkg-query -W -f '${Package}\n' | sort >"$root/tmp/before"
in_root sh -c 'apt-get install -y -qq /tmp/debs/switchyard_*.deb >/tmp/apt.log 2>&1' ||
    { cat "$root/tmp/apt.log"; exit 1; }
in_root dpkg-query -W -f '${Package}\n' | sort >"$root/tmp/after"
new=$(comm -13 "$root/tmp/before" "$root/tmp/after")
depends=$(in_root dpkg-query -W -f '${Depends}' switchyard | tr ',' '\n' | sed 's/(.*//; s/ //g')
# what apt may pull for it: the closure of Depends (and of the libraries' own Recommends)
closure=$(in_root apt-cache depends --recurse --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances switchyard | sed -n 's/^  *\(Pre\)\{0,1\}Depends: //p; s/^  *Recommends: //p' |
    tr -d '<>' | sort -u)
missing=""
for d in $depends; do
    grep -qx "$d" <<<"$new" || in_root dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"
done
check "every runtime dependency is installed:$(tr '\n' ' ' <<<"$depends")" test -z "$missing"
check "the runtime libraries are among them (libh2o-evloop0.13, libssl3, liblua5.4-0, libjansson4, libcurl4, libsqlite3-0, libhiredis0.14)" \
    bash -c "for l in libh2o-evloop0.13 libssl3 liblua5.4-0 libjansson4 libcurl4 libsqlite3-0 libhiredis0.14; do grep -qx \"\$l\" <<<'$depends' || exit 1; done"
extra=$(grep -vx switchyard <<<"$new" | grep -vxF "$closure" || true)
check "nothing beyond them is pulled in${extra:+ (extra: $(tr '\n' ' ' <<<"$extra"))}" test -z "$extra"
check "no build tool or -dev package is pulled in" \
    bash -c "! grep -Eq -- '-dev$|^gcc|^cpp|^cmake$|^make$|^build-essential$' <<<'$new'"

echo "== what the package put in place"
check "the system user exists, without a shell" \
    bash -c "chroot '$root' getent passwd switchyard | grep -q ':/var/lib/switchyard:/usr/sbin/nologin$'"
state=$(chroot "$root" stat -c '%U:%G %a' /var/lib/switchyard 2>&1 || true)
check "/var/lib/switchyard is the user's, mode 750 ($state)" test "$state" = "switchyard:switchyard 750"
check "/etc/default/switchyard is root's, mode 600" \
    test "$(stat -c '%U %a' "$root/etc/default/switchyard")" = "root 600"
check "the config and the environment file are conffiles" \
    bash -c "chroot '$root' dpkg-query -W -f '\${Conffiles}' switchyard | grep -q /etc/switchyard/switchyard.lua &&
             chroot '$root' dpkg-query -W -f '\${Conffiles}' switchyard | grep -q /etc/default/switchyard"
check "the unit is installed and enabled" \
    test -L "$root/etc/systemd/system/multi-user.target.wants/switchyard.service"
check "the unit was not started: no webhook secret yet" \
    bash -c "! grep -Eq '(start|restart) .*switchyard.service' '$root/tmp/systemd-calls' 2>/dev/null"
check "switchyard version names the commit and the libraries" \
    bash -c "chroot '$root' switchyard version | grep -q '^switchyard .* (commit ' &&
             chroot '$root' switchyard version | grep -q '^h2o  *2\\.2\\.5'"

echo "== configured: the secret in /etc/default/switchyard"
sed -i 's/^#UNIZO_WEBHOOK_SECRET=$/UNIZO_WEBHOOK_SECRET=pkg-test-secret-51c2/' "$root/etc/default/switchyard"
check "switchyard check passes with the environment file's secret" \
    in_root sh -c 'set -a; . /etc/default/switchyard; set +a; switchyard check -c /etc/switchyard/switchyard.lua >/tmp/check.log 2>&1'
check "and fails without it, saying so" \
    bash -c "! chroot '$root' switchyard check -c /etc/switchyard/switchyard.lua >'$root/tmp/nocheck.log' 2>&1 &&
             grep -qi secret '$root/tmp/nocheck.log'"
check "the edge example (nginx in front) is installed and its switchyard config passes check, without the HTTP/2 warning" \
    in_root sh -c 'test -f /usr/share/doc/switchyard/examples/nginx.conf &&
                   UNIZO_WEBHOOK_SECRET=x switchyard check -c /usr/share/doc/switchyard/examples/switchyard.lua >/tmp/edge.log 2>&1 &&
                   ! grep -q http2 /tmp/edge.log'

# the server as the unit runs it: its user, its working directory, its environment file,
# in a network namespace of its own (its ports are the packaged config's)
serve() {
    unshare --net -- bash -c "
        ip link set lo up
        chroot '$root' /usr/bin/env -i PATH=/usr/bin:/bin sh -c '
            cd /var/lib/switchyard && set -a && . /etc/default/switchyard && set +a &&
            exec setpriv --reuid=switchyard --regid=switchyard --init-groups \
                switchyard serve -c /etc/switchyard/switchyard.lua' >'$root/tmp/serve.log' 2>&1 &
        server=\$!
        for i in \$(seq 100); do
            grep -q 'switchyard started' '$root/tmp/serve.log' && break
            sleep 0.1
        done
        $1
        kill -TERM \$server || true
        wait \$server || true
    "
}
serve "chroot '$root' /usr/bin/env UNIZO_WEBHOOK_SECRET=pkg-test-secret-51c2 switchyard send \
    --url http://127.0.0.1:8080/webhooks/unizo --secret-env UNIZO_WEBHOOK_SECRET /tmp/event.json \
    >'$root/tmp/send.log' 2>&1"
check "the server started as the system user" grep -q 'switchyard started' "$root/tmp/serve.log"
check "a signed delivery is accepted" grep -q '200 {"status":"accepted"' "$root/tmp/send.log"
check "and stored under /var/lib/switchyard, the user's" \
    test "$(chroot "$root" stat -c %U /var/lib/switchyard/switchyard.db 2>&1)" = switchyard
check "the stored event is listed" \
    bash -c "chroot '$root' setpriv --reuid=switchyard --regid=switchyard --init-groups \
             switchyard events -c /etc/switchyard/switchyard.lua | grep -q evt_01HM8Q0002"

echo "== a plugin built against switchyard-dev with pkg-config"
in_root sh -c 'apt-get install -y -qq /tmp/debs/switchyard-dev_*.deb >/tmp/apt-dev.log 2>&1' ||
    { cat "$root/tmp/apt-dev.log"; exit 1; }
cat >"$root/tmp/pkgtest.c" <<'PLUGIN'
#include <switchyard/plugin.h>

static const struct sy_plugin_host *host;

static int init(const struct sy_plugin_host *h, const char *config, void **state)
{
    (void)config;
    host = h;
    *state = NULL;
    return SY_OK;
}

static int handle(void *state, const struct sy_event *event, struct sy_plugin_call *call)
{
    (void)state;
    (void)event;
    (void)call;
    host->log(1, "pkgtest", "PKGTEST HANDLED");
    return SY_OK;
}

static const char *const events[] = {"scm.*", NULL};
SY_PLUGIN_DEFINE = {SY_PLUGIN_ABI_VERSION, sizeof(struct sy_plugin), "pkgtest", "1.0", events,
                    init, handle, NULL};
PLUGIN
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
# the root's SDK through the root's .pc (its /usr/include is not this machine's: keep the -I)
cflags=$(PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_LIBDIR="$root/usr/lib/$multiarch/pkgconfig" \
    PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 pkg-config --cflags switchyard-plugin)
mkdir -p "$root/usr/local/lib/switchyard/plugins"
incdir=$(realpath -m "$(sed -n 's/.*-I\([^ ]*\).*/\1/p' <<<"$cflags")")
check "pkg-config gives the root's include folder ($incdir)" test "$incdir" = "$root/usr/include"
cc -shared -fPIC -fvisibility=hidden $cflags -o "$root/usr/local/lib/switchyard/plugins/pkgtest.so" \
    "$root/tmp/pkgtest.c"
sed -i 's|^-- plugin_dir = "/usr/local/lib/switchyard/plugins"|plugin_dir = "/usr/local/lib/switchyard/plugins"|' \
    "$root/etc/switchyard/switchyard.lua"
check "switchyard check loads it" \
    bash -c "chroot '$root' sh -c 'set -a; . /etc/default/switchyard; set +a;
             switchyard check -c /etc/switchyard/switchyard.lua' | grep -q 'plugin pkgtest 1.0'"
serve "chroot '$root' /usr/bin/env UNIZO_WEBHOOK_SECRET=pkg-test-secret-51c2 switchyard send \
    --url http://127.0.0.1:8080/webhooks/unizo --secret-env UNIZO_WEBHOOK_SECRET /tmp/event.json \
    >'$root/tmp/send2.log' 2>&1
    for i in \$(seq 100); do grep -q 'PKGTEST HANDLED' '$root/tmp/serve.log' && break; sleep 0.1; done"
check "the server runs it (a second delivery of the event is a duplicate; a new event runs it)" \
    grep -q '"status":"duplicate"' "$root/tmp/send2.log"
sed 's/evt_01HM8Q0002/evt_pkg_plugin_1/' "$root/tmp/event.json" >"$root/tmp/event2.json"
serve "chroot '$root' /usr/bin/env UNIZO_WEBHOOK_SECRET=pkg-test-secret-51c2 switchyard send \
    --url http://127.0.0.1:8080/webhooks/unizo --secret-env UNIZO_WEBHOOK_SECRET /tmp/event2.json \
    >'$root/tmp/send3.log' 2>&1
    for i in \$(seq 100); do grep -q 'PKGTEST HANDLED' '$root/tmp/serve.log' && break; sleep 0.1; done"
check "the plugin handled the new event" grep -q 'PKGTEST HANDLED' "$root/tmp/serve.log"

echo "== upgrade, remove, purge"
: >"$root/tmp/systemd-calls"
in_root sh -c 'apt-get install -y -qq --reinstall /tmp/debs/switchyard_*.deb >/tmp/apt.log 2>&1'
check "reinstalled with a secret set: the unit is stopped, then started again" \
    bash -c "grep -Eq 'stop .*switchyard.service' '$root/tmp/systemd-calls' &&
             grep -Eq 'restart .*switchyard.service' '$root/tmp/systemd-calls'"
: >"$root/tmp/systemd-calls"
in_root sh -c 'apt-get remove -y -qq switchyard >/tmp/apt.log 2>&1'
check "apt remove stops the service" grep -Eq 'stop .*switchyard.service' "$root/tmp/systemd-calls"
check "apt remove leaves the store in place" test -s "$root/var/lib/switchyard/switchyard.db"
check "apt remove keeps the config" test -f "$root/etc/switchyard/switchyard.lua"
in_root sh -c 'apt-get purge -y -qq switchyard >/tmp/apt.log 2>&1'
check "apt purge removes the config, the rules folder and the environment file" \
    bash -c "test ! -e '$root/etc/switchyard' && test ! -e '$root/etc/default/switchyard'"
check "apt purge keeps the event store" test -s "$root/var/lib/switchyard/switchyard.db"
in_root sh -c 'apt-get install -y -qq /tmp/debs/switchyard_*.deb >/tmp/apt.log 2>&1'
check "a new install finds the old store's events" \
    bash -c "chroot '$root' setpriv --reuid=switchyard --regid=switchyard --init-groups \
             switchyard events -c /etc/switchyard/switchyard.lua | grep -q evt_01HM8Q0002"
in_root sh -c 'SWITCHYARD_PURGE_STORE=yes apt-get purge -y -qq switchyard >/tmp/apt.log 2>&1'
check "SWITCHYARD_PURGE_STORE=yes apt purge removes the store too" test ! -e "$root/var/lib/switchyard"

echo "$checks checks, $failures failed"
[[ $failures -eq 0 ]]
