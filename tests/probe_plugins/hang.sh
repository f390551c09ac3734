#!/bin/sh
# A Nagios plugin that hangs with children of its own, for tests/test_probe_exec.py.
#   hang.sh PIDFILE FLAG
# While FLAG exists: write its own pid, two children's and a grandchild's to
# PIDFILE, ignore SIGTERM (so only SIGKILL ends it) and wait forever.
# Without FLAG: answer OK at once, like a healthy plugin.
pidfile=$1
flag=$2
if [ ! -e "$flag" ]; then
    echo "HANG OK - not hanging | runs=1;;;0"
    exit 0
fi
echo $$ > "$pidfile"
sleep 300 &
echo $! >> "$pidfile"
sh -c 'sleep 300 & echo $! >> "$1"; wait' hang-child "$pidfile" &
echo $! >> "$pidfile"
trap '' TERM
echo "started" > "$flag.started"
while :; do
    wait
done
