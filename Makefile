# One-word entry points. `make run` and `make test` are the quick start.

CARGO ?= cargo

.PHONY: run test lint deb package-test bench bench-control bench-components bench-restarts \
	bench-slow-catalog bench-fleet bench-metrics

## Build everything, start the stack under systemd and show `ImageServing status`.
run:
	scripts/install-deps run
	$(CARGO) build --workspace --locked
	scripts/run-stack

## The whole test suite: unit and integration tests, the package test, the unified-host test.
test:
	scripts/install-deps test
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked
	tests/package/run
	tests/unified-host/run

## Formatting and lints, as CI checks them.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## The Debian package, built with dpkg-buildpackage.
deb:
	debian/build-deb

package-test:
	tests/package/run

## Benchmarks (on demand, never in CI): each prints its ratio against a named baseline.
bench: bench-control bench-components bench-restarts bench-slow-catalog bench-fleet bench-metrics

bench-control:
	$(CARGO) bench --locked -p imageserving --bench control

bench-components:
	components/bench/run.sh

## Status of 1, 2 and 4 hosts over ssh, against systemctl -H. A debug build: the time is ssh's
## and the network's, and the daemons only have to run.
bench-fleet:
	scripts/install-deps test
	$(CARGO) build --workspace --locked
	$(CARGO) bench --locked --profile dev -p imageserving --bench fleet

## Restarts of es, ps, svg and the whole stack under load: failures and latency per cell.
bench-restarts:
	$(CARGO) build --workspace --locked
	scripts/bench-restarts

## Cached images with every catalog file-system call slowed: what else waits for them.
bench-slow-catalog:
	components/bench/slow-catalog.sh

## Uncached throughput with metrics on against metrics off, in one run.
bench-metrics:
	components/bench/metrics-cost.sh
