# bookhub developer targets. `make run` needs nothing but Go; `make test`
# runs the MySQL/Redis integration tests when those services answer at the
# BOOKHUB_TEST_* URLs below (and skips them, saying so, when they don't).

GO              ?= go
GOLANGCI_VERSION := v2.15.0
BIN             := $(CURDIR)/bin
GOLANGCI        := $(BIN)/golangci-lint
VERSION         ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS         := -s -w -X main.version=$(VERSION)

export BOOKHUB_TEST_MYSQL_URL ?= mysql://root@127.0.0.1:3306/test
export BOOKHUB_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

# Load generator defaults for `make loadtest-local` (two local instances).
LT_SUBSCRIBERS ?= 2000
LT_WRITES      ?= 500
LT_RATE        ?= 50

# Soak size for `make soak` (`make soak-short` is the CI size); SOAK_FLAGS
# passes more, e.g. SOAK_FLAGS=-soak.rate=0 for writes as fast as they go.
SOAK_SUBSCRIBERS ?= 1000
SOAK_WRITES      ?= 10000
SOAK_FLAGS       ?=

.PHONY: all run build test test-short bench lint fmt vet tools k6-check up down loadtest loadtest-local loadtest-scenarios soak soak-short nginx-conf clean

all: lint test

## run: one instance on embedded SQLite + in-process bus, no services needed
run:
	$(GO) run ./cmd/bookhub

## build: static binary in bin/bookhub
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/bookhub ./cmd/bookhub

## test: gofmt + vet + every test with the race detector (TESTFLAGS=-count=1 skips the cache)
test: fmt vet
	$(GO) test -race -timeout 20m $(TESTFLAGS) ./...

## test-short: unit tests only, no race detector (fast feedback)
test-short:
	BOOKHUB_TEST_MYSQL_URL= BOOKHUB_TEST_REDIS_URL= $(GO) test -short ./...

## soak: 3 instances behind a real nginx, 1,000 resuming subscribers, 10,000 writes, Redis
## SIGKILLed and restarted twice, one instance SIGKILLed and restarted; prints one summary line.
## Needs MySQL, redis-server and nginx (apt-get install nginx-light).
soak:
	BOOKHUB_SOAK=1 $(GO) test -count=1 -timeout 60m -run '^TestSoak$$' -v ./internal/soak/ \
		-args -soak.subscribers=$(SOAK_SUBSCRIBERS) -soak.writes=$(SOAK_WRITES) $(SOAK_FLAGS)

## soak-short: the same soak with 100 subscribers and 1,000 writes (CI; well under a minute)
soak-short:
	BOOKHUB_SOAK=1 $(GO) test -count=1 -timeout 5m -run '^TestSoak$$' -v ./internal/soak/ \
		-args -soak.subscribers=100 -soak.writes=1000

## nginx-conf: regenerate deploy/nginx.conf (compose) from deploy/nginx.conf.tmpl
nginx-conf:
	$(GO) test -count=1 -run '^TestUpdateNginxConf$$' ./deploy/ -update

# Benchmarks for `make bench`: BENCH selects them (a -bench pattern), BENCHTIME
# sets -benchtime (unset = Go's default of 1s; CI runs `make bench BENCHTIME=1x`,
# one op each, so every benchmark keeps compiling and working; it asserts no
# times). BENCH_PKGS defaults to every package that has a benchmark.
BENCH      ?= .
BENCHTIME  ?=
BENCH_PKGS ?= $(or $(shell git grep --untracked -l '^func Benchmark' -- '*_test.go' 2>/dev/null | xargs -r -n1 dirname | sort -u | sed 's|^|./|'),./...)

## bench: Go benchmarks with -benchmem, e.g. make bench BENCH=Verify BENCHTIME=2s (see loadtest/RESULTS.md);
## those that need MySQL or Redis use the BOOKHUB_TEST_* services and skip without them
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(if $(BENCHTIME),-benchtime=$(BENCHTIME)) -timeout 30m $(BENCH_PKGS)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './loadtest/k6/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## lint: golangci-lint (pinned) with the dependency rules of .golangci.yml
lint: $(GOLANGCI)
	$(GOLANGCI) run ./...

$(GOLANGCI):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

tools: $(GOLANGCI)

## k6-check: type-check the k6 scripts against @types/k6 (k6 itself not needed)
k6-check:
	cd loadtest/k6 && npm ci --no-audit --no-fund --loglevel=error && npm run --silent check

K6_SCRIPT    ?= ws_fanout.js
K6_TOKEN_TTL ?= 2h

## up / down: 3 replicas behind nginx (:8080) + MySQL, Redis, Prometheus (:9091), Grafana (:3000); needs Docker
# The k6 scripts share one viewer token over all their sockets, more than the
# default per-subject cap of 100 per replica: the kit's stack raises it.
up: export BOOKHUB_WS_MAX_CONNS_PER_SUBJECT ?= 1000
up:
	docker compose up -d --build --wait

down:
	docker compose down --remove-orphans

## loadtest: K6_SCRIPT (ws_fanout.js | rest_crud.js | scaling.js) through the compose load balancer;
## tokens are minted inside bookhub-1, which holds the cluster's JWT secret
loadtest:
	@mint() { docker compose exec -T bookhub-1 /bookhub token --sub "$$1" --role "$$2" --ttl $(K6_TOKEN_TTL); }; \
	BOOKHUB_TOKEN=$$(mint k6 viewer) && BOOKHUB_WRITER_TOKEN=$$(mint k6-writer editor) && \
	BOOKHUB_ADMIN_TOKEN=$$(mint k6-admin admin) && \
	export BOOKHUB_TOKEN BOOKHUB_WRITER_TOKEN BOOKHUB_ADMIN_TOKEN && \
	docker compose --profile loadtest run --rm k6 run /scripts/$(K6_SCRIPT)

## loadtest-local: the Go load generator against BOOKHUB_TARGETS (default: one local instance);
## tokens are minted from BOOKHUB_JWT_SECRET (embedded mode: BOOKHUB_JWT_SECRET=$$(cat data/jwt-secret))
BOOKHUB_TARGETS ?= http://127.0.0.1:8080
loadtest-local:
	$(GO) run ./loadtest/cmd/bookhub-loadtest -targets $(BOOKHUB_TARGETS) \
		-subscribers $(LT_SUBSCRIBERS) -writes $(LT_WRITES) -rate $(LT_RATE) \
		-source-addrs 127.0.0.1-127.0.0.8 -json loadtest/out/report.json -html loadtest/out/report.html

## loadtest-scenarios: the load rows of loadtest/RESULTS.md, each on a fresh 2-instance cluster
## (loadtest/cluster.sh: local MySQL + Redis), each writing $(LT_SCEN_OUT)/<scenario>.json, .svg,
## .html, .txt (summary) and .cost.txt (server CPU-s per 1,000 deliveries, idle memory per socket,
## generator CPU-s):
##   idle-10k, idle-19.9k  10,000 / 19,900 sockets over both instances, no writes, held LT_SCEN_IDLE:
##                         the servers' RSS, heap and stack per subscribed socket
##   1k-20wps              1,000 subscribers, 20 writes/s for 20 s
##   10k-2wps              10,000 subscribers, 2 writes/s for 20 s
##   10k-1publisher        10,000 subscribers, one publisher as fast as it goes (-write-concurrency 1 -rate 0)
## 19,900 sockets fit the 20,000-fd limit: the generator holds 19,900 plus a few, each instance
## about 10,000; 16 loopback source addresses keep ephemeral ports apart. Sizes are the LT_SCEN_*
## variables (a smoke run: LT_SCEN_IDLE_SMALL=500 LT_SCEN_IDLE_LARGE=500 LT_SCEN_1K=500 LT_SCEN_10K=500).
## Compare two runs of a row: bin/bookhub-loadtest compare OLD.json NEW.json
LT_SCEN_OUT         ?= loadtest/out
LT_SCEN_IDLE        ?= 10s
LT_SCEN_IDLE_SMALL  ?= 10000
LT_SCEN_IDLE_LARGE  ?= 19900
LT_SCEN_1K          ?= 1000
LT_SCEN_10K         ?= 10000
LT_SCEN_FAST_WRITES ?= 100
loadtest-scenarios: build
	$(GO) build -o $(BIN)/bookhub-loadtest ./loadtest/cmd/bookhub-loadtest
	@failed=""; \
	row() { name=$$1; shift; echo "== scenario $$name: $$*"; \
		SKIP_BUILD=1 OUT='$(LT_SCEN_OUT)' NAME=$$name loadtest/cluster.sh 2 -- "$$@" || failed="$$failed $$name"; }; \
	row idle-10k -subscribers $(LT_SCEN_IDLE_SMALL) -writes 0 -idle $(LT_SCEN_IDLE) -connect-concurrency 128; \
	row idle-19.9k -subscribers $(LT_SCEN_IDLE_LARGE) -writes 0 -idle $(LT_SCEN_IDLE) -connect-concurrency 128; \
	row 1k-20wps -subscribers $(LT_SCEN_1K) -writes 400 -rate 20; \
	row 10k-2wps -subscribers $(LT_SCEN_10K) -writes 40 -rate 2 -connect-concurrency 128 -drain 20s; \
	row 10k-1publisher -subscribers $(LT_SCEN_10K) -writes $(LT_SCEN_FAST_WRITES) -write-concurrency 1 -rate 0 \
		-connect-concurrency 128 -drain 20s; \
	if [ -n "$$failed" ]; then echo "scenarios not clean:$$failed"; exit 1; fi

clean:
	rm -rf $(BIN) loadtest/out
