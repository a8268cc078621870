#!/usr/bin/env bash
# Authorize against Health/Check through h2load (nghttp2's load generator, which nobody here
# wrote): one server per binary given, all up at once, on SQLite in a temporary folder. Each
# round runs Authorize (one warm token, app "bench", Read-Only) then Health/Check for SECONDS
# each, c8 x m16, against every server in turn, so a slow moment of this shared machine falls
# on all of them alike. Per round it prints the throughput ratio and the server's CPU per call
# (from /proc/PID/stat), then the medians. docs/BENCHMARKS.md has the figures.
#
#   benches/h2load_pair.sh ROUNDS SECONDS BIN LABEL [BIN LABEL ...]
#   benches/h2load_pair.sh 25 2 target/release/api-tokens main
#
# Needs h2load (Debian: nghttp2-client) and python3.
set -euo pipefail

if [ $# -lt 4 ] || [ $(($# % 2)) -ne 0 ]; then
    sed -n 9,10p "$0" >&2
    exit 2
fi
rounds=$1 seconds=$2
shift 2
work=$(mktemp -d)
labels=() ports=() metrics_ports=() pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
headers=(-H content-type:application/grpc -H te:trailers)

# A gRPC body: a 5-byte frame header (no compression, big-endian length), then the message.
body() {
    python3 - "$@" <<'PY'
import struct, sys
def field(n, b): return bytes([n << 3 | 2, len(b)]) + b
def frame(m): return b"\0" + struct.pack(">I", len(m)) + m
out, secret = sys.argv[1], sys.argv[2:]
message = field(1, secret[0].encode()) + field(2, b"bench") + bytes([3 << 3, 1]) if secret else b""
open(out, "wb").write(frame(message))
PY
}
body "$work/health.bin"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

while [ $# -gt 0 ]; do
    bin=$1 label=$2
    shift 2
    db="sqlite://$work/$label.db?mode=rwc"
    secret=$("$bin" bootstrap --database-url "$db" --account acme --admin you@example.com \
        --output json | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
    body "$work/$label.bin" "$secret"
    port=$(free_port) metrics_port=$(free_port)
    "$bin" serve --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$metrics_port" \
        --database-url "$db" >"$work/$label.log" 2>&1 &
    pids+=($!) labels+=("$label") ports+=("$port") metrics_ports+=("$metrics_port")
done

authorize_url() { echo "http://127.0.0.1:${ports[$1]}/apitokens.v1.AuthorizeService/Authorize"; }
health_url() { echo "http://127.0.0.1:${ports[$1]}/grpc.health.v1.Health/Check"; }
for i in "${!labels[@]}"; do
    for _ in $(seq 60); do grep -q serving "$work/${labels[$i]}.log" && break; sleep 0.5; done
    # Warm: the first call records the name; then a few thousand of each, unmeasured.
    h2load -n 5000 -c 8 -m 16 -d "$work/${labels[$i]}.bin" "${headers[@]}" "$(authorize_url "$i")" >/dev/null
    h2load -n 5000 -c 8 -m 16 -d "$work/health.bin" "${headers[@]}" "$(health_url "$i")" >/dev/null
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# One phase: prints requests/s and the server's CPU µs per call.
phase() {
    local before after out
    before=$(cpu_ticks "$1")
    out=$(h2load -c 8 -m 16 -D "$seconds" -d "$3" "${headers[@]}" "$2")
    after=$(cpu_ticks "$1")
    echo "$out" | awk -v cpu=$((after - before)) -v hz="$(getconf CLK_TCK)" '
        /^finished in/ { rps = $4; gsub(",", "", rps) }
        /^requests:/ { calls = $8 }
        END { printf "%s %.2f\n", rps, cpu * 1e6 / hz / calls }'
}
for round in $(seq "$rounds"); do
    for i in "${!labels[@]}"; do
        read -r a_rps a_cpu < <(phase "${pids[$i]}" "$(authorize_url "$i")" "$work/${labels[$i]}.bin")
        read -r h_rps h_cpu < <(phase "${pids[$i]}" "$(health_url "$i")" "$work/health.bin")
        python3 -c "print('${labels[$i]} round $round: Authorize %.0f/s Health %.0f/s ratio %.3f, server CPU per call %.1f / %.1f us = %.3f' % ($a_rps, $h_rps, $a_rps / $h_rps, $a_cpu, $h_cpu, $a_cpu / $h_cpu))"
    done
done | tee "$work/rounds.txt"

# Every Authorize must have been answered OK and allowed, or the figures measure something else.
for i in "${!labels[@]}"; do
    echo "${labels[$i]}: $(curl -s "http://127.0.0.1:${metrics_ports[$i]}/metrics" |
        grep '^api_tokens_authorize_decisions_total' | tr '\n' ' ')"
done

python3 - "$work/rounds.txt" "${labels[@]}" <<'PY'
import re, statistics, sys
rows = open(sys.argv[1]).read().splitlines()
for label in sys.argv[2:]:
    mine = [r for r in rows if r.startswith(label + " round")]
    ratio = [float(re.search(r"ratio ([\d.]+)", r).group(1)) for r in mine]
    cpu = [float(re.search(r"= ([\d.]+)$", r).group(1)) for r in mine]
    q = statistics.quantiles(ratio, n=4) if len(ratio) > 1 else ratio * 3
    print(f"{label}: Authorize / Health/Check throughput, median of {len(ratio)} rounds {statistics.median(ratio):.3f}"
          f" (quartiles {q[0]:.3f}-{q[2]:.3f}); server CPU per call {statistics.median(cpu):.3f}")
PY
