#!/usr/bin/env bash
# What the worst in-limit agent message costs the aggregator to receive: a 4 MB Report of
# 2,000,000 empty entries (2 bytes each on the wire), sent by a raw gRPC client over loopback to
# an in-process aggregator. Printed: this process's peak RSS growth (VmHWM), in MB.
#
#   bash bench/decode_bound.sh    # under a minute once built
#
# 1. The default cap (--max-report-entries = --max-agents x 16 = 32,000): refused on the wire
#    bytes before decoding, RESOURCE_EXHAUSTED.
# 2. A cap above the message's entries (4,000,000): the Report is decoded in full before
#    anything can refuse it (here FAILED_PRECONDITION: no assignment yet) - the cost the
#    pre-decode check prevents.
# Each run is its own process, so nothing else moves the peak.
set -euo pipefail
cd "$(dirname "$0")/.."
run() {
    ECHOMESH_BENCH_MAX_REPORT_ENTRIES="$1" cargo test -q -p echomesh-aggregator --test adversarial \
        decode_bound_figure -- --ignored --nocapture 2>&1 | grep '^cap='
}
run ""
run 4000000
