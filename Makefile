# pio — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# make run: a single-node cluster with simulated hardware, UI and API on http://localhost:8080.
RUN_FLAGS ?= --data-dir ./data --http-addr :8080 --raft-addr 127.0.0.1:8300 --gossip-addr 127.0.0.1:8301 \
             --advertise-addr 127.0.0.1 --hardware sim

.PHONY: build run test bench cross clean fuzz chaos

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/pio ./cmd/pio

run: build
	./bin/pio serve $(RUN_FLAGS)

test:
	$(GO) mod tidy -diff
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^third_party/'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go' | grep -v '^third_party/'); exit 1; }
	$(GO) test -race -count=1 -timeout 10m ./...
	cd third_party/raft && $(GO) test -race -count=1 -run PIO .
	cd third_party/memberlist && $(GO) test -race -count=1 -run PIO .

# Benchmarks start real clusters of `pio serve` processes on loopback and print one JSON object per scenario.
# BENCH=... chooses scenarios; BENCH_TRIALS sets the failover trials.
BENCH ?= failover,writes,idle,memory,detection,stability,scale,dispatch,readings
BENCH_TRIALS ?= 20
bench: build
	$(GO) run ./cmd/piobench -pio ./bin/pio -scenarios $(BENCH) -trials $(BENCH_TRIALS)

# Randomized fault schedules against five processes, histories checked with porcupine.
# Runs inside a network namespace it creates (partitions with iptables) when run as root.
CHAOS_SCHEDULES ?= 200
CHAOS_FAULTS ?= 4
chaos: build
	$(GO) run ./cmd/piobench -pio ./bin/pio -chaos $(CHAOS_SCHEDULES) -chaos-faults $(CHAOS_FAULTS) -out .

# Fuzz the strict request decoders (seed corpus in api/testdata/fuzz).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./api -run '^$$' -fuzz FuzzDecodeBody -fuzztime $(FUZZTIME)

# Static binaries for Raspberry Pis: 64-bit (Pi 3/4/5, Zero 2), 32-bit ARMv7 (Pi 2/3) and ARMv6 (Pi Zero/1).
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/pio-linux-arm64 ./cmd/pio
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/pio-linux-armv7 ./cmd/pio
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/pio-linux-armv6 ./cmd/pio

clean:
	rm -rf bin
