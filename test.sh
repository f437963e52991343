#!/usr/bin/env bash
# Runs every test project of the solution and prints one summary line: "N passed, N failed".
# Installs what the tests need when it is missing: redis-server, promtool and the pushgateway (Debian packages).
set -uo pipefail
cd "$(dirname "$0")"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} ..."
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || { echo "Could not install ${need[*]}; install them and run again."; echo "0 passed, 1 failed"; exit 1; }
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp)
dotnet build Metrics.sln -c Release -v quiet -nologo 2>&1 | grep -E "error|Build succeeded" | sort -u
if [ "${PIPESTATUS[0]}" -ne 0 ]; then echo "Build failed."; echo "0 passed, 1 failed"; exit 1; fi

# Each test project prints "Passed!  - Failed: F, Passed: P, ..." (or "Failed!  - ..."); sum them.
dotnet test Metrics.sln -c Release --no-build "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -oE '^(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+' "$log" | awk -F'[:,]' '{p+=$4} END {print p+0}')
failed=$(grep -oE '^(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+' "$log" | awk -F'[:,]' '{f+=$2} END {print f+0}')
# A test process that crashes still prints its "Passed!" line for the tests it finished: count each crash as a failure.
crashed=$(grep -c 'Catastrophic failure' "$log")
failed=$((failed + crashed))
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi

# The benchmarks in their short mode: proves each one still runs (one iteration, no timing checks).
bench=benchmarks/Metrics.Benchmarks/bin/Release/net10.0/Metrics.Benchmarks.dll
for mode in "--ci" "shared --ci"; do
  if (cd "$(dirname "$bench")" && timeout 900 dotnet "$(basename "$bench")" $mode >/tmp/metrics-bench-ci.log 2>&1); then
    echo "benchmarks $mode: ran"; passed=$((passed + 1))
  else
    echo "benchmarks $mode: FAILED"; tail -30 /tmp/metrics-bench-ci.log; failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
