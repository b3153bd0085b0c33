#!/usr/bin/env bash
# Debian packages the test suite needs (browser tests drive Debian's chromium; the
# parity suite runs PySpark on Java 17; the real-time tests start a redis-server).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# the PySpark parity suite needs a Java 17 runtime
if ! command -v java >/dev/null 2>&1 && ! ls -d /usr/lib/jvm/java-17-openjdk-* >/dev/null 2>&1
then
    missing+=(openjdk-17-jre-headless)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: install ${missing[*]} for the browser, Spark and real-time tests (no apt-get here)" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing ${missing[*]} (Debian packages) ..."
$SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null; }
