# wsgate — run `make help` for the targets.

GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 30s

.DEFAULT_GOAL := help

# help lines the descriptions up after the longest target name.
.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {n++; name[n] = $$1; desc[n] = $$2; if (length($$1) > w) w = length($$1)} \
		END {for (i = 1; i <= n; i++) printf "  make %-" w "s  %s\n", name[i], desc[i]}' $(MAKEFILE_LIST)

# run builds the binary first and says so: on a fresh machine the first
# build downloads the modules and compiles for a minute or two, which
# `go run` would spend in silence. WSGATE is where it goes; RUN_FLAGS come
# after the development flags, and a flag given twice takes the last value
# (make run RUN_FLAGS='--listen :8080' listens on every interface).
WSGATE ?= ./wsgate
RUN_FLAGS ?=

.PHONY: run
run: ## build and run the gateway on 127.0.0.1:8080 (admin 127.0.0.1:9090) with an embedded NATS server and development auth (?user=); Ctrl-C stops it at once
	@echo "building wsgate (the first build downloads modules and takes a minute or two)…"
	@$(GO) build -o $(WSGATE) ./cmd/wsgate
	$(WSGATE) --auth=none --log-format=console --drain-delay=0 --drain-timeout=0 $(RUN_FLAGS)

# js-bundle rebuilds the JavaScript client's single-file bundle with npm
# and copies it where the demo page of make run embeds it: a fresh clone
# runs the demo without Node, and TestDemoBundle fails while the copy
# differs from what the sources build.
.PHONY: js-bundle
js-bundle: ## rebuild clients/js/dist/wsgate.min.js (npm) and copy it into cmd/wsgate/demo, which the demo page of make run embeds
	cd clients/js && npm ci --no-audit --no-fund && npm run build
	cp clients/js/dist/wsgate.min.js clients/js/dist/wsgate.min.js.map cmd/wsgate/demo/

.PHONY: build
build: ## build the wsgate binary into ./wsgate
	$(GO) build -o wsgate ./cmd/wsgate

# The integration tests (build tag integration) run real outside programs:
# HAProxy in front of two gateways, headless Chromium, python3-websockets.
# Each skips itself, saying so, when its program is missing; bash .ci/run
# installs them all. TEST_TAGS= leaves them out of the build.
TEST_TAGS ?= integration

.PHONY: test
test: lint ## vet, staticcheck, gofmt, cross-build, every test with the race detector (HAProxy, Chromium and python3-websockets too, when installed), then the allocation budgets without it
	$(GO) test -race -shuffle=on -count=1 -timeout 10m -tags '$(TEST_TAGS)' $(PKGS)
	$(GO) test -count=1 -run Allocs $(PKGS)

# The fault tests run once in make test; make fault runs them FAULT_COUNT
# times more, shuffled, to catch what happens once in a while: a gateway
# killed with SIGKILL, an external NATS restarted, a node of a three-node
# cluster lost, slow consumers, replays merged with live traffic.
FAULT_COUNT ?= 3
FAULT_TESTS = TestDurableSurvives|TestDurableClusterNodeLoss|TestSlowDurableConsumerResumes|TestReplayIsPaced|TestResumeMergesLive|TestReplayGroupMergesLive|TestResumeFlood

.PHONY: fault
fault: ## the durable fault tests FAULT_COUNT (3) more times, with the race detector: SIGKILL, NATS restart, a cluster node lost, slow consumers
	$(GO) test -race -shuffle=on -count=$(FAULT_COUNT) -timeout 20m -run '$(FAULT_TESTS)' ./gateway ./cmd/wsgate

# fault-cluster is the reference fleet of deploy/cluster under a NATS node's
# loss, FAULT_COUNT times: three natsd processes with routes, two gateway
# binaries, HAProxy when installed, a node killed with SIGKILL while it
# leads the stream and while it does not. About 35 s a run, hence a target
# of its own; it is an integration test (TEST_TAGS), run once by make test.
.PHONY: fault-cluster
fault-cluster: ## the reference fleet (deploy/cluster) losing a NATS node, FAULT_COUNT (3) times with the race detector
	$(GO) test -race -count=$(FAULT_COUNT) -timeout 10m -tags '$(TEST_TAGS)' -run '^TestClusterFailover$$' ./cmd/wsgate

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: lint
lint: ## go vet and staticcheck (integration tests included), gofmt, and a macOS cross-build (the portable netpoll)
	$(GO) vet -tags integration $(PKGS)
	$(GO) run $(STATICCHECK) -tags integration $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	GOOS=darwin $(GO) build $(PKGS)

.PHONY: bench
bench: ## Go benchmarks: upgrade (beside net/http+gorilla), frames, fan-out families, read path, pool, poller, bus
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s $(PKGS)

# Every fuzz target, as package:Target. The gateway's targets run real
# sockets, so each input costs milliseconds: FUZZMINTIME bounds how long a new
# interesting input is minimized (Go's default, 60s, is longer than a short
# FUZZTIME). A crasher lands in <package>/testdata/fuzz/<Target>/ and then
# runs with every `go test` as a regression case.
FUZZ_TARGETS = \
	./gateway:FuzzHandshake \
	./gateway:FuzzConnInput \
	./gateway:FuzzClientOp \
	./gateway:FuzzFrameSplits \
	./gateway:FuzzUTF8Tail \
	./control:FuzzRequestDecode \
	./internal/httpapi:FuzzDecodePublish \
	./internal/httpapi:FuzzDecodeDisconnect \
	./internal/httpapi:FuzzDecodeSubscription \
	./internal/wire:FuzzParseHeader \
	./internal/wire:FuzzAppendJSONString \
	./internal/wire:FuzzAppendMessage \
	./bus:FuzzServerOp \
	./bus:FuzzPosition \
	./bus:FuzzMark \
	./internal/wire:FuzzInflate \
	./internal/channel:FuzzMatch \
	./internal/channel:FuzzValid \
	./bench/internal/engine:FuzzClientFrames \
	./bench/crosscheck:FuzzParseDelivery
FUZZMINTIME ?= 5s

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 30s): handshake, frames (whole and split), client ops (upstream included), control requests, HTTP API bodies, UTF-8, wire format, inflate, a durable message's stream headers, acked marks, channel names, bench's frame reader
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:}"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $${t%%:*}; \
	done

# v1.9.0 is the latest, but the module proxy does not serve the
# golang.org/x/telemetry version it requires (403), so it cannot be built.
GOVULNCHECK ?= golang.org/x/vuln/cmd/govulncheck@v1.8.0
# VULNDB points govulncheck at another copy of the database (a URL, or
# file:///path for an offline mirror); empty means https://vuln.go.dev.
VULNDB ?=

.PHONY: vuln
vuln: ## govulncheck: known vulnerabilities in the code we call, the standard library included (needs vuln.go.dev or VULNDB)
	$(GO) run $(GOVULNCHECK) $(if $(VULNDB),-db $(VULNDB)) ./...

.PHONY: cover
cover: ## test coverage report in cover.out (open with go tool cover -html=cover.out)
	$(GO) test -count=1 -coverprofile=cover.out $(PKGS)
	$(GO) tool cover -func=cover.out | tail -1

IDLE_N ?= 5000

# idle-rss is `wsbench connect` with the gateway's pid (RSS from /proc) and
# its /metrics (goroutines), after the gateway has idled for 3 s. IDLE_FLAGS
# adds wsbench flags: --deflate offers permessage-deflate as Chromium does,
# --hold 1m keeps the connections open to profile the gateway.
.PHONY: idle-rss
idle-rss: build ## RSS and goroutines per idle connection: wsbench connect, IDLE_N connections, NATS in another process (IDLE_FLAGS=--deflate: browsers' offer)
	@set -e; \
	./wsgate --auth=none --listen 127.0.0.1:18079 --admin '' --embedded-nats-listen 127.0.0.1:14222 --log-level warn & nats=$$!; \
	sleep 1; \
	./wsgate --auth=none --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 --nats-url nats://127.0.0.1:14222 --log-level warn & gw=$$!; \
	trap 'kill $$gw $$nats 2>/dev/null' EXIT; \
	sleep 3; \
	$(GO) run ./cmd/wsbench connect --url ws://127.0.0.1:18080/ws --server-pid $$gw --server-metrics http://127.0.0.1:19090/metrics \
		--conns $(IDLE_N) --user-prefix idle $(IDLE_FLAGS)

.PHONY: bench-drain
bench-drain: ## a graceful drain of 10,000 connections: its duration and how reconnects spread (N, DRAIN_DELAY, DRAIN_TIMEOUT)
	bash bench/drain.sh

.PHONY: bench-compare
bench-compare: ## the standard broadcast scenario against wsgate and the gorilla baseline, plus the kernel floor; prints the ratios
	bash bench/compare.sh

.PHONY: bench-crosscheck
bench-crosscheck: ## the standard comparison with an independent gorilla client (not wsbench): wsgate, the gorilla baseline and a floor server, ROUNDS rounds; connect rate, idle RSS, CPU per million delivered, broadcast p99 and their ratios; JSON and summary.txt in OUT
	bash bench/crosscheck.sh

.PHONY: bench-durable
bench-durable: ## durable vs volatile, same run: idle RSS and connect rate (--durable on/off), live unicast and broadcast p99, resume storms of 10,000 with 10 missed and none (history requests, CPU per resume); JSON in OUT
	bash bench/durable.sh

.PHONY: bench-control
bench-control: ## the control plane: presence and disconnect latency across 3 gateways, connect rate with 0 and 10,000 revocations (same run, alternating), upstream request/reply by rate, and a Node client's check of it; JSON and summary.txt in OUT
	bash bench/control.sh

.PHONY: bench-jwks
bench-jwks: ## token verification at upgrade: connect rate and gateway CPU per connect with an HS256 secret vs RS256, ES256 and EdDSA keys of a JWKS (same rounds, order rotated), beside BenchmarkAuthenticate; JSON and summary.txt in OUT
	bash bench/jwks.sh

# bench-reconnect: RECONNECT_FLAGS go to the script (--n 1000, --bucket
# 100); RECONNECT_OUT, a directory, gets its .txt and .json.
RECONNECT_FLAGS ?=
RECONNECT_OUT ?=

.PHONY: bench-reconnect
bench-reconnect: ## 10,000 JavaScript clients (@wsgate/client) after a SIGKILLed, restarted gateway: when each reconnects, beside a naive fixed-1s wave (RECONNECT_FLAGS, RECONNECT_OUT)
	@set -e; bin=$$(mktemp -d); trap 'rm -rf "$$bin"' EXIT; \
	$(GO) build -o "$$bin/wsgate" ./cmd/wsgate; \
	cd clients/js; [ -d node_modules/ws ] || npm ci --no-audit --no-fund; npm run build; \
	node bench/reconnect-spread.js --bin "$$bin/wsgate" $(if $(RECONNECT_OUT),--out $(abspath $(RECONNECT_OUT))) $(RECONNECT_FLAGS)
