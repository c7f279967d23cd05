#!/usr/bin/env bash
# Randomized input tests, long run: the same proptests CI runs with a few hundred cases each
# (packet parser, the pre-decode entry walker, Hello validation, Report admission and merge, assignment intake, text escaping),
# here with PROPTEST_CASES inputs each. Prints, per test, the inputs tried, the time and whether a
# failing input was found (proptest shrinks it and prints it; a regression file is written next
# to the test). No network traffic.
#
#   bash bench/fuzz.sh                      # 100000 inputs per test
#   PROPTEST_CASES=1000000 bash bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${PROPTEST_CASES:-100000}"
export PROPTEST_CASES="$cases"
# The fork/timeout machinery is not used: a panic fails the test and is reported as a crash.
tests=(
    "echomesh-agent icmp::packet::tests::arbitrary_bytes_never_panic"
    "echomesh-agent icmp::packet::tests::mutated_replies_never_yield_a_wrong_sample"
    "echomesh-agent icmp::packet::tests::mutated_errors_never_panic"
    "echomesh-agent report::guard::tests::intake_keeps_its_bounds"
    "echomesh-aggregator ingest::hello::fuzz::accepted_hellos_are_bounded_printable_and_unicast"
    "echomesh-aggregator ingest::admit::tests::admitted_counters_are_bounded"
    "echomesh-aggregator ingest::text::tests::escaped_text_is_printable_and_bounded"
    "echomesh-proto bound::tests::arbitrary_bytes_never_panic_and_never_pass_over_the_caps"
)
cargo test --locked -p echomesh-agent -p echomesh-aggregator -p echomesh-proto --lib --no-run >/dev/null 2>&1 ||
    cargo test --locked -p echomesh-agent -p echomesh-aggregator -p echomesh-proto --lib --no-run
printf '%-82s %10s %9s  %s\n' test inputs seconds result
failed=0
total=0
for t in "${tests[@]}"; do
    crate="${t%% *}"
    name="${t#* }"
    start=$(date +%s.%N)
    if out=$(cargo test --locked -q -p "$crate" --lib -- --exact "$name" 2>&1); then
        result="ok, no crash"
    else
        result="FAILED (see below)"
        failed=$((failed + 1))
        printf '%s\n' "$out" >&2
    fi
    end=$(date +%s.%N)
    total=$((total + cases))
    printf '%-82s %10s %9.1f  %s\n' "$name" "$cases" "$(echo "$end - $start" | bc)" "$result"
done
echo "inputs tried: $total, tests failed: $failed"
[ "$failed" -eq 0 ]
