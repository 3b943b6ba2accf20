# bench/report.sh — sourced by bench/run after measuring: medians per variant, the markdown
# table with ratios, the targets of issue 7, and where the report goes. Uses bench/run's variables.

# Medians per (case, variant): rps p50 p99 cpu, plus totals of non-2xx and errors.
MEDIANS=$WORK/medians.tsv
awk -F'\t' '
  { key = $1 "\t" $2; if (!(key in seen)) { order[++nk] = key; seen[key] = 1 }
    for (c = 4; c <= 7; c++) vals[key, c] = vals[key, c] " " $c
    non2xx[key] += $8; errs[key] += $9; rounds[key]++ }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END { for (k = 1; k <= nk; k++) { key = order[k]
    printf "%s\t%.1f\t%.3f\t%.3f\t%.2f\t%d\t%d\t%d\n", key, median(vals[key, 4]), median(vals[key, 5]), median(vals[key, 6]), median(vals[key, 7]), non2xx[key], errs[key], rounds[key] } }
' "$RESULTS" >"$MEDIANS"

get() { # get CASE VARIANT FIELD(rps|p50|p99|cpu)
  awk -F'\t' -v c="$1" -v v="$2" -v f="$3" '
    BEGIN { col["rps"] = 3; col["p50"] = 4; col["p99"] = 5; col["cpu"] = 6; col["non2xx"] = 7; col["errors"] = 8 }
    $1 == c && $2 == v { print $(col[f]); found = 1 } END { if (!found) print "" }' "$MEDIANS"
}
fanout() { echo "$FANOUT" | sed -n "s/.*\"$1\":\([^],}]*\).*/\1/p"; } # fanout FIELD: from bench_revoke's summary
fanout_gates() { echo "$FANOUT" | sed -n 's/.*"gate_p99_ms":\[\([^]]*\)\].*/\1/p' | sed 's/,/, /g'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f×", a / b }'; }
fmt_int() { awk -v a="$1" 'BEGIN { if (a == "") print "–"; else printf "%.0f", a }'; }

DIRECT=$(get direct upstream rps)
case_title() {
  case "$1" in
    direct) echo "1. upstream direct (no gate)" ;;
    allow) echo "2. token auth, keep-alive, plain HTTP" ;;
    tls) echo "3. token auth over TLS, keep-alive" ;;
    deny) echo "4. denied (wrong secret, valid format)" ;;
    mtls-ecdsa) echo "5. mTLS full handshakes/s, ECDSA P-256 client" ;;
    mtls-rsa) echo "5. mTLS full handshakes/s, RSA-2048 client" ;;
    scale) echo "6. scale: $SCALE_TOKENS tokens + $SCALE_POLICIES CN-regex policies" ;;
    durability) echo "7. audit durability (token auth, plain HTTP)" ;;
    pg) echo "8. store: PostgreSQL (gate A of two) vs SQLite, token auth" ;;
    assertion) echo "9. origin assertion (token auth, plain HTTP)" ;;
  esac
}
row() { # row CASE VARIANT LABEL BASELINE_VARIANT
  local c=$1 v=$2 label=$3 base=$4 rps
  rps=$(get "$c" "$v" rps)
  if [ -z "$rps" ]; then return 0; fi
  local vs_base="–" vs_direct="–"
  [ -n "$base" ] && vs_base=$(ratio "$rps" "$(get "$c" "$base" rps)")
  case "$c" in mtls-*) ;; *) vs_direct=$(ratio "$rps" "$DIRECT") ;; esac
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(case_title "$c")" "$label" "$(fmt_int "$rps")" \
    "$(get "$c" "$v" p50)" "$(get "$c" "$v" p99)" "$(get "$c" "$v" cpu)" "$vs_base" "$vs_direct" \
    "$(get "$c" "$v" non2xx)/$(get "$c" "$v" errors)"
}
na_row() { printf '| %s | botgate | not available: %s | | | | | | |\n' "$(case_title "$1")" "$2"; }
verdict() { # verdict VALUE OP LIMIT → met / not met (smoke runs judge nothing)
  awk -v a="$1" -v op="$2" -v b="$3" -v smoke="$SMOKE" 'BEGIN { if (a == "") { print "n/a"; exit }
    if (smoke == 1) { print "not judged (smoke)"; exit }
    ok = (op == ">=") ? (a + 0 >= b + 0) : (a + 0 <= b + 0); print ok ? "**met**" : "**not met**" }'
}
num_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.3f", a / b }'; }

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
REPORT=$WORK/report.md
{
  echo "## botgate benchmark results"
  echo
  if [ "$SMOKE" = 1 ]; then echo "**Smoke run** (1 s per variant, debug build): numbers only show the harness works."; echo; fi
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); botgate $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown) ($PROFILE build)"
  echo "- machine: $(nproc) CPUs, $CPU_MODEL; Linux $(uname -r); $(nginx -v 2>&1 | sed 's/^nginx version: //'); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(openssl version | cut -d' ' -f1-2)"
  echo "- load average (1/5/15 min) at start: $LOAD_START, at end: $LOAD_END; measuring took ${ELAPSED}s"
  echo "- settings: wrk -t$THREADS -c$CONNS --latency, ${DURATION}s per run, $ROUNDS round(s) per variant alternating A B A B …$([ "$WARMUP" = 1 ] && echo ", after a 1 s warm-up of each"); median of rounds; nothing pinned"
  echo "- load: $TOKENS real tokens in both gates (nginx: \`map\` id → secret; botgate: SHA-256 in the store), requests cycle through all of them; audit on in both (botgate JSONL writer; nginx \`log_format escape=json\`, buffer=256k flush=100ms); upstream: one nginx \`return 200\` on loopback, keep-alive from both gates"
  echo "- handshakes: examples/bench_handshake.rs (rustls client, resumption disabled, $HS_CONC concurrent, one GET with Connection: close per handshake); server cert ECDSA P-256 from the same bench CA in both"
  echo "- gate CPU = utime+stime of the gate process(es) (botgate; nginx master+workers) over the run ÷ requests; for \"upstream direct\" it is the upstream's"
  echo
  echo "| case | server | req/s (median) | p50 ms | p99 ms | gate CPU µs/req | ÷ nginx | ÷ direct | non-2xx/errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  row direct upstream "upstream direct" ""
  row allow botgate botgate nginx
  row allow botgate-cmp "botgate ($COMPARE)" nginx
  row allow nginx nginx ""
  if [ -n "$TLS_REASON" ]; then na_row tls "$TLS_REASON"; else row tls botgate botgate nginx; row tls botgate-cmp "botgate ($COMPARE)" nginx; fi
  row tls nginx nginx ""
  row deny botgate botgate nginx
  row deny botgate-cmp "botgate ($COMPARE)" nginx
  row deny nginx nginx ""
  for k in ecdsa rsa; do
    if [ -n "$MTLS_REASON" ]; then na_row "mtls-$k" "$MTLS_REASON"; else row "mtls-$k" botgate botgate nginx; fi
    row "mtls-$k" nginx nginx ""
  done
  row scale botgate-scale "botgate (scale) ÷ botgate ($TOKENS tokens)" botgate
  row scale botgate "botgate ($TOKENS tokens)" ""
  row durability botgate-buffered "botgate, audit_durability = buffered (no wait)" ""
  row durability botgate "botgate, write (default) ÷ buffered" botgate-buffered
  row durability botgate-fsync "botgate, fsync ÷ buffered" botgate-buffered
  row pg botgate-pg "botgate on PostgreSQL ÷ on SQLite" botgate
  row pg botgate "botgate on SQLite" ""
  row assertion botgate-noassert "botgate, assertion = false" ""
  row assertion botgate "botgate, assertion signed (default) ÷ off" botgate-noassert
  echo
  echo "Case 4 counts refusals: non-2xx equals the requests there by design. \"÷ nginx\" for case 6 is ÷ botgate with $TOKENS tokens, for cases 7, 8 and 9 ÷ the botgate variant named."
  if [ -n "$FANOUT" ]; then
    echo
    echo "**Revocation fan-out (case 8):** $(fanout revocations) token revocations written to the PostgreSQL store (\`Store::revoke_token\`, what \`botgate token revoke\` calls), each token polled on both gates every $(fanout interval_ms) ms on fresh connections until refused (examples/bench_revoke.rs); clock from before the revoking call to the refusal on the slower gate: **p50 $(fanout p50_ms) ms, p99 $(fanout p99_ms) ms, max $(fanout max_ms) ms** (p99 per gate: $(fanout_gates) ms)."
  fi
  echo
  echo "### Targets (issues 7, 11, 13, 14)"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  r=$(num_ratio "$(get allow botgate rps)" "$(get allow nginx rps)")
  echo "| token auth throughput ≥ 1.2× nginx | ${r:-–}× | $(verdict "$r" ">=" 1.2) |"
  r=$(num_ratio "$(get allow botgate p99)" "$(get allow nginx p99)")
  echo "| token auth p99 ≤ nginx | $(get allow botgate p99) ms vs $(get allow nginx p99) ms (${r:-–}×) | $(verdict "$r" "<=" 1.0) |"
  r=$(num_ratio "$(get allow botgate cpu)" "$(get allow nginx cpu)")
  echo "| token auth gate CPU/req ≤ 0.8× nginx | $(get allow botgate cpu) µs vs $(get allow nginx cpu) µs (${r:-–}×) | $(verdict "$r" "<=" 0.8) |"
  r=$(num_ratio "$(get deny botgate rps)" "$(get allow botgate rps)")
  rn=$(num_ratio "$(get deny nginx rps)" "$(get allow nginx rps)")
  echo "| denied ≥ 1.5× allowed rate (botgate) | ${r:-–}× (nginx: ${rn:-–}×) | $(verdict "$r" ">=" 1.5) |"
  for k in ecdsa rsa; do
    if [ -n "$MTLS_REASON" ]; then
      echo "| mTLS handshakes/s ≥ nginx ($k) | not available: $MTLS_REASON (nginx: $(fmt_int "$(get "mtls-$k" nginx rps)")/s) | not measured |"
    else
      r=$(num_ratio "$(get "mtls-$k" botgate rps)" "$(get "mtls-$k" nginx rps)")
      echo "| mTLS handshakes/s ≥ nginx ($k) | ${r:-–}× | $(verdict "$r" ">=" 1.0) |"
    fi
  done
  r=$(awk -v a="$(get durability botgate p99)" -v b="$(get durability botgate-buffered p99)" 'BEGIN { if (a == "" || b == "") print ""; else printf "%.3f", a - b }')
  echo "| group commit (write) p99 ≤ buffered + 0.5 ms (issue 11) | ${r:-–} ms more | $(verdict "$r" "<=" 0.5) |"
  if [ -n "$FANOUT" ]; then
    r=$(fanout p99_ms)
    echo "| revocation refused by every gate, p99 ≤ 1 s (issue 13) | $r ms over $(fanout revocations) | $(verdict "$r" "<=" 1000) |"
    echo "| … stretch: p99 ≤ 100 ms | $r ms | $(verdict "$r" "<=" 100) |"
    r=$(num_ratio "$(get pg botgate-pg rps)" "$(get pg botgate rps)")
    echo "| token auth per gate on PostgreSQL ≥ 0.95× on SQLite (issue 13) | ${r:-–}× | $(verdict "$r" ">=" 0.95) |"
  fi
  r=$(num_ratio "$(get assertion botgate rps)" "$(get assertion botgate-noassert rps)")
  if [ -n "$r" ]; then
    echo "| allowed throughput with the origin assertion ≥ 0.95× without (issue 14) | ${r}× | $(verdict "$r" ">=" 0.95) |"
  fi
  echo
  echo "Policy-decision, token-check and audit-serialisation figures come from \`cargo bench\` (see bench/README.md)."
} >"$REPORT"

if [ -z "$OUT" ]; then
  if [ "$SMOKE" = 1 ] || [ "$PARTIAL" = 1 ]; then OUT=$WORK/results.md; else OUT=$ROOT/bench/results.md; fi
fi
[ "$OUT" = "$WORK/results.md" ] || cp "$REPORT" "$OUT"
cat "$REPORT"
echo
log "raw rounds (case variant round req/s p50-ms p99-ms cpu-µs/req non-2xx errors; wrk cases add sys-µs/req, the kernel's part of the cpu):"
column -t -s $'\t' "$RESULTS" >&2 || cat "$RESULTS" >&2
[ "$OUT" = "$WORK/results.md" ] || log "written to $OUT"
