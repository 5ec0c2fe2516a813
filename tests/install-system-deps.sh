#!/bin/sh
# System packages the test suite drives for real: Debian's Chromium (for the HTML outputs and the
# VS Code UI), tmux (the terminal `--live` is driven in), and what code-server (the VS Code
# end-to-end test) needs to build its native modules and to search (ripgrep, fed to its
# @vscode/ripgrep dependency instead of a download), and Go for `go tool pprof`, which reads
# --pprof files as the fleet profilers' own tooling does (tests/test_pprof.py).
set -e
# CPython 3.14 and 3.15 (and Tachyon) in a Debian sid root; never fails, see the script.
sh "$(dirname "$0")/make-sid-root.sh"
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v rg >/dev/null 2>&1 || missing="$missing ripgrep"
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v krb5-config >/dev/null 2>&1 || missing="$missing libkrb5-dev"
command -v go >/dev/null 2>&1 || missing="$missing golang-go"
dpkg -s build-essential >/dev/null 2>&1 || missing="$missing build-essential"
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq build-essential python3 pkg-config libkrb5-dev ripgrep tmux chromium golang-go >/dev/null
fi
