#!/bin/bash
# amqp-tools (rabbitmq-c's command line tools) against warrend.
# Starts its own warrend (or uses WARREN_TEST_EXTERNAL=host:port) and ends
# with exactly one line "RESULT: P passed, F failed, S skipped" and exits
# non-zero when F > 0.  Missing amqp-tools is a failure, not a skip.

# make check may run this with /bin/sh: this script needs bash
if [ -z "${BASH_VERSION:-}" ]; then exec /bin/bash "$0" "$@"; fi

set -u
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
PASS=0
FAIL=0
SKIP=0
TMP=
PID=

ok()   { echo "ok - $1"; PASS=$((PASS + 1)); }
bad()  { echo "FAIL - $1"; FAIL=$((FAIL + 1)); }
skip() { echo "SKIP - $1"; SKIP=$((SKIP + 1)); }
result() {
	echo "RESULT: $PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ]
}

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	[ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "interrupted"; FAIL=$((FAIL + 1)); result; exit 1' INT TERM

# Watchdog: the whole script must finish in 120 s.
MAIN=$$
(
	sleep 120 </dev/null >/dev/null 2>&1 &
	s=$!
	trap 'kill $s 2>/dev/null; exit 0' TERM
	wait $s
	echo "test_amqp_tools.sh: timed out after 120 s" >&2
	kill -TERM "$MAIN"
) </dev/null &
WATCHDOG=$!

# A missing dependency is a failure, not a pass with nothing run.
missing=
for tool in amqp-declare-queue amqp-publish amqp-get amqp-consume amqp-delete-queue; do
	command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
	bad "missing:$missing -- install the Debian package amqp-tools"
	kill "$WATCHDOG" 2>/dev/null
	result
	exit 1
fi

TMP=$(mktemp -d /tmp/warren-tools.XXXXXX)

if [ -n "${WARREN_TEST_EXTERNAL:-}" ]; then
	HOSTPORT=$WARREN_TEST_EXTERNAL
	PORT=${HOSTPORT##*:}
	echo "# using external broker 127.0.0.1:$PORT"
else
	WARREND=${WARREND:-}
	if [ -z "$WARREND" ]; then
		for cand in "${WARREN_BUILDDIR:-}/src/warrend" "$HERE/../../src/warrend"; do
			[ -x "$cand" ] && WARREND=$cand && break
		done
	fi
	if [ -z "$WARREND" ] || [ ! -x "$WARREND" ]; then
		bad "WARREND not set and no src/warrend found"
		result
		exit 1
	fi
	PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
	mkdir "$TMP/data"
	cat >"$TMP/warren.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$PORT
default_user = guest
default_pass = guest
default_vhost = /
log.console.level = info
warren.data_dir = $TMP/data
management.tcp.port = 0
prometheus.tcp.port = 0
EOF
	"$WARREND" -c "$TMP/warren.conf" </dev/null >"$TMP/stderr.log" 2>&1 &
	PID=$!
	up=0
	for _ in $(seq 1 150); do
		if ! kill -0 "$PID" 2>/dev/null; then
			break
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			up=1
			break
		fi
		sleep 0.1
	done
	if [ "$up" != 1 ]; then
		bad "warrend did not start on port $PORT; stderr:"
		cat "$TMP/stderr.log"
		result
		exit 1
	fi
fi

URL="amqp://guest:guest@127.0.0.1:$PORT"
# amqp-consume runs a command per message with the body on stdin
printf '#!/bin/sh\ncat\necho\n' >"$TMP/catnl"
chmod +x "$TMP/catnl"
T="timeout 20"
Q="warren-tools-$$-$RANDOM"

# 1. declare a named queue: prints the name
out=$($T amqp-declare-queue -u "$URL" -q "$Q" 2>"$TMP/err"); rc=$?
if [ $rc -eq 0 ] && [ "$out" = "$Q" ]; then ok "amqp-declare-queue -q prints the name"
else bad "amqp-declare-queue -q: rc=$rc out='$out' err=$(cat "$TMP/err")"; fi

# 2. publish three messages
prc=0
for i in 1 2 3; do
	$T amqp-publish -u "$URL" -r "$Q" -p -C text/plain -b "body $i" 2>>"$TMP/err" || prc=$?
done
if [ $prc -eq 0 ]; then ok "amqp-publish x3 (-p -C text/plain)"; else bad "amqp-publish rc=$prc: $(cat "$TMP/err")"; fi

# 3. amqp-get reads them back in order
got=""
for i in 1 2 3; do
	b=$($T amqp-get -u "$URL" -q "$Q" 2>>"$TMP/err"); rc=$?
	got="$got[$rc:$b]"
done
if [ "$got" = "[0:body 1][0:body 2][0:body 3]" ]; then ok "amqp-get returns the 3 bodies in order"
else bad "amqp-get sequence: $got"; fi

# 4. amqp-get on the empty queue exits 2 (as with RabbitMQ) and prints nothing
b=$($T amqp-get -u "$URL" -q "$Q" 2>"$TMP/err"); rc=$?
if [ $rc -eq 2 ] && [ -z "$b" ]; then ok "amqp-get on empty queue exits 2"
else bad "amqp-get on empty queue: rc=$rc out='$b' err=$(cat "$TMP/err")"; fi

# 5. amqp-get on a missing queue fails with 404
b=$($T amqp-get -u "$URL" -q "no-such-queue-$$" 2>"$TMP/err"); rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 404 "$TMP/err"; then ok "amqp-get on missing queue: 404"
else bad "amqp-get on missing queue: rc=$rc err=$(cat "$TMP/err")"; fi

# 6. amqp-consume -c 2 reads two messages and exits
$T amqp-publish -u "$URL" -r "$Q" -b "first" && $T amqp-publish -u "$URL" -r "$Q" -b "second"
out=$($T amqp-consume -u "$URL" -q "$Q" -c 2 "$TMP/catnl" 2>"$TMP/err"); rc=$?
if [ $rc -eq 0 ] && [ "$out" = "$(printf 'first\nsecond')" ]; then ok "amqp-consume -c 2"
else bad "amqp-consume -c 2: rc=$rc out='$out' err=$(cat "$TMP/err")"; fi
b=$($T amqp-get -u "$URL" -q "$Q" 2>/dev/null); rc=$?
if [ $rc -eq 2 ]; then ok "queue empty after amqp-consume acked both"
else bad "queue not empty after consume: rc=$rc out='$b'"; fi

# 7. amqp-consume with prefetch 1 over more messages than the count
for i in 1 2 3 4; do $T amqp-publish -u "$URL" -r "$Q" -b "m$i"; done
out=$($T amqp-consume -u "$URL" -q "$Q" -p 1 -c 3 "$TMP/catnl" 2>"$TMP/err"); rc=$?
if [ $rc -eq 0 ] && [ "$out" = "$(printf 'm1\nm2\nm3')" ]; then ok "amqp-consume -p 1 -c 3"
else bad "amqp-consume -p 1 -c 3: rc=$rc out='$out' err=$(cat "$TMP/err")"; fi
b=$($T amqp-get -u "$URL" -q "$Q" 2>/dev/null); rc=$?
if [ $rc -eq 0 ] && [ "$b" = "m4" ]; then ok "the unconsumed message is still queued"
else bad "after consume -c 3: rc=$rc out='$b'"; fi

# 8. server-named queue
out=$($T amqp-declare-queue -u "$URL" -q "" 2>"$TMP/err"); rc=$?
if [ $rc -eq 0 ] && [[ "$out" == amq.gen-?* ]]; then ok "amqp-declare-queue -q '' gives a server-named queue ($out)"
else bad "server-named queue: rc=$rc out='$out' err=$(cat "$TMP/err")"; fi
# the name printed is a real queue: it can be deleted
if [[ "$out" == amq.gen-?* ]]; then
	if $T amqp-delete-queue -u "$URL" -q "$out" >/dev/null 2>"$TMP/err"; then
		ok "the server-named queue exists (deleted it)"
	else bad "deleting server-named queue '$out': $(cat "$TMP/err")"; fi
fi

# 9. properties set by amqp-publish arrive (checked with pika)
$T amqp-publish -u "$URL" -r "$Q" -p -C application/json -E utf-8 -t reply-here \
	-H "x-tool: yes" -b '{"a": 1}' 2>"$TMP/err"
props=$(timeout 20 $PY - "$PORT" "$Q" 2>&1 <<'EOF'
import sys, pika
p = pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]), socket_timeout=5,
                              credentials=pika.PlainCredentials("guest", "guest"))
c = pika.BlockingConnection(p)
m, pr, body = c.channel().basic_get(sys.argv[2], auto_ack=True)
print(m is not None and pr.delivery_mode, pr and pr.content_type, pr and pr.content_encoding,
      pr and pr.reply_to, pr and pr.headers, body)
c.close()
EOF
)
want="2 application/json utf-8 reply-here {'x-tool': 'yes'} b'{\"a\": 1}'"
if [ "$props" = "$want" ]; then ok "amqp-publish properties and headers arrive"
else bad "properties: got [$props] want [$want]"; fi

# 10. line-buffered publishing from stdin
printf 'l1\nl2\nl3\n' | $T amqp-publish -u "$URL" -r "$Q" -l 2>"$TMP/err"
got=""
for i in 1 2 3; do got="$got[$($T amqp-get -u "$URL" -q "$Q" 2>/dev/null)]"; done
if [ "$got" = "[l1][l2][l3]" ]; then ok "amqp-publish -l: one message per line"
else bad "amqp-publish -l: $got"; fi

# 11. wrong password: refused at login (403 ACCESS_REFUSED), although the
# queue exists and holds a message -- and the message is still there after
$T amqp-publish -u "$URL" -r "$Q" -b "guarded" 2>"$TMP/err" || bad "publish before password test: $(cat "$TMP/err")"
b=$($T amqp-get -u "amqp://guest:wrong@127.0.0.1:$PORT" -q "$Q" 2>"$TMP/err"); rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ -z "$b" ] && grep -q 403 "$TMP/err" &&
	grep -q ACCESS_REFUSED "$TMP/err" && grep -qi login "$TMP/err"; then
	ok "wrong password refused with 403 ACCESS_REFUSED at login"
else bad "wrong password: rc=$rc out='$b' err=$(cat "$TMP/err")"; fi
b=$($T amqp-get -u "$URL" -q "$Q" 2>"$TMP/err"); rc=$?
if [ $rc -eq 0 ] && [ "$b" = "guarded" ]; then ok "the right password gets the message the wrong one could not"
else bad "get with the right password after the refused one: rc=$rc out='$b' err=$(cat "$TMP/err")"; fi

# 12. delete the queue; it is gone afterwards
$T amqp-delete-queue -u "$URL" -q "$Q" >/dev/null 2>"$TMP/err"; rc=$?
b=$($T amqp-get -u "$URL" -q "$Q" 2>"$TMP/err2"); rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -ne 0 ] && [ $rc2 -ne 2 ] && [ $rc2 -ne 124 ] && grep -q 404 "$TMP/err2"; then
	ok "amqp-delete-queue removes the queue"
else bad "amqp-delete-queue: rc=$rc; get after delete rc=$rc2 err=$(cat "$TMP/err" "$TMP/err2")"; fi

# stop warrend: SIGTERM -> exit 0, no sanitizer report
if [ -n "$PID" ]; then
	kill -TERM "$PID"
	st=
	for _ in $(seq 1 100); do
		if ! kill -0 "$PID" 2>/dev/null; then
			wait "$PID"; st=$?
			break
		fi
		sleep 0.1
	done
	if [ -z "$st" ]; then
		bad "warrend did not exit within 10 s of SIGTERM"
	elif [ "$st" -ne 0 ]; then
		bad "warrend exited with status $st after SIGTERM"
	elif grep -qE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$TMP/stderr.log"; then
		bad "sanitizer report in warrend's stderr"
	else
		ok "warrend exits 0 on SIGTERM"
	fi
	if [ "$FAIL" -ne 0 ]; then
		echo "--- warrend stderr (tail) ---"
		tail -n 50 "$TMP/stderr.log"
	fi
	PID=
fi

kill "$WATCHDOG" 2>/dev/null
result
