#!/usr/bin/env bash
# Make sure the OpenSSH server and client (and rsync) are installed: the cloud-runner
# tests start a real sshd on 127.0.0.1. Idempotent; installs only when sshd is missing
# and we are root (Debian/Ubuntu apt). Exit 0 when sshd, ssh and ssh-keygen are
# available afterwards, non-zero with a message otherwise.
set -u

have_all() {
    [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || return 1
    command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1
}

if have_all; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_sshd: installing openssh-server openssh-client rsync with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq openssh-server openssh-client rsync; } >&2; then
        echo "ensure_sshd: apt-get install failed" >&2
    fi
fi

if have_all; then
    exit 0
fi
echo "ensure_sshd: OpenSSH server/client not available (need /usr/sbin/sshd, ssh, ssh-keygen)." >&2
echo "ensure_sshd: install them as root: apt-get install openssh-server openssh-client rsync" >&2
exit 1
