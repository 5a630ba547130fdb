# Vigie — one Makefile for every module. `make` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

LOCAL := deploy/local
# Every Go module of the workspace (pkg, schemas, each service, the local ClickHouse server).
MODULES := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell go env GOPATH)/bin/staticcheck
GOTESTFLAGS ?= -race -count=1 -timeout 20m
export GOFLAGS := -buildvcs=false

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install what a fresh machine needs: Go modules, Kafka jars, the chDB engine, ClickHouse 18.16
	@for m in $(MODULES); do (cd $$m && go mod download); done
	@$(LOCAL)/kafka.sh fetch
	@$(LOCAL)/chdb-fetch.sh
	@$(LOCAL)/clickhouse18.sh install
	@$(LOCAL)/chserver/pyclients.sh
	@test -f .cache/zookeeper/libs/commons-cli-1.5.0.jar || mvn -q -B -f pkg/chmigrate/testdata/zookeeper/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.cache/zookeeper/libs
	@test -x $(STATICCHECK) || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: up
up: ## start Kafka and the local ClickHouse server on 127.0.0.1; addresses (and credentials) in .state/env
	@$(LOCAL)/infra.sh up
	@grep -v 'PASSWORD=' .state/env

.PHONY: down
down: ## stop the services and everything `make up` (or a test run) started
	@$(LOCAL)/infra.sh down

.PHONY: build
build: ## build every module on its own (GOWORK=off) and the service binaries (and vigiectl) into bin/
	@for m in $(MODULES); do echo "build $$m"; (cd $$m && GOWORK=off go build ./...); done
	@mkdir -p bin
	@v=$$(git describe --tags --always --dirty 2>/dev/null || echo dev); r=$$(git rev-parse HEAD 2>/dev/null || echo unknown); for d in services/*/cmd/* deploy/local/chserver/cmd/*; do [ -d $$d ] && go build -ldflags "-X github.com/vigie/vigie/pkg/service.version=$$v -X github.com/vigie/vigie/pkg/service.revision=$$r" -o bin/ ./$$d; done; ls bin

.PHONY: test
test: deps ## run every module's tests with -race against real Kafka and ClickHouse (starts and stops them)
	@if $(LOCAL)/infra.sh running; then \
	  $(MAKE) --no-print-directory test-only; \
	else \
	  $(LOCAL)/infra.sh up; \
	  status=0; $(MAKE) --no-print-directory test-only || status=$$?; \
	  $(LOCAL)/infra.sh down; exit $$status; \
	fi

.PHONY: test-only
test-only: ## run the tests against infrastructure that is already up
	@.ci/depskew
	@set -a; . .state/env; set +a; \
	failed=""; \
	for m in $(MODULES); do \
	  echo "== test $$m"; \
	  (cd $$m && GOWORK=off go test $(GOTESTFLAGS) ./...) || failed="$$failed $$m"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; echo "all modules passed"

# A count of inputs, not a duration: with a duration, Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" at the deadline when its workers are slow to stop
# (go.dev/issue/75804, fixed in Go 1.27). A count has no deadline to race.
FUZZTIME ?= 20000x

.PHONY: fuzz
fuzz: ## run every fuzz target (parsers of outside input) on FUZZTIME inputs each (default 20000x)
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' services pkg deploy schemas); do \
	  dir=$$(dirname $$f); mod=$$dir; while [ ! -f $$mod/go.mod ]; do mod=$$(dirname $$mod); done; \
	  for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz $$dir $$fn ($(FUZZTIME))"; \
	    (cd $$mod && GOWORK=off go test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$${dir#$$mod/}) || exit 1; \
	  done; \
	done

.PHONY: bench-ingest
bench-ingest: ## ingest throughput and latency against the local broker (needs make up)
	@set -a; . .state/env; set +a; cd services/ingest && GOWORK=off go test -run '^$$' -bench Ingest -benchtime 1000x ./cmd/ingest

.PHONY: migrate
migrate: ## apply the ClickHouse schema to database vigie (idempotent; needs make up)
	@set -a; . .state/env; set +a; go run ./services/vigiectl/cmd/vigiectl migrate -clickhouse.addrs=$$CLICKHOUSE_ADDR -clickhouse.database=vigie

.PHONY: topics
topics: ## create or align the Kafka topics of schemas/kafka/topics.yaml on the local broker (needs make up)
	@set -a; . .state/env; set +a; go run ./services/vigiectl/cmd/vigiectl topics apply -kafka.brokers=$$KAFKA_BROKERS

.PHONY: test-writer-kill
test-writer-kill: ## the writer's SIGKILL test with 10 kills over 200,000 events (needs make up)
	@set -a; . .state/env; set +a; cd services/writer && WRITER_KILLS=10 GOWORK=off go test -count=1 -timeout 30m -run TestSurvivesSIGKILL -v ./cmd/writer

.PHONY: test-faults
test-faults: ## the whole fault-injection suite (needs make up; about 25 min): its table goes to docs/faults.md
	@set -a; . .state/env; set +a; cd services/simulator && status=0; \
	  VIGIE_FAULTS=full VIGIE_FAULTS_DOC=$(CURDIR)/docs/faults.md GOWORK=off go test -count=1 -timeout 50m -parallel 4 -run '^TestFaultSuite$$' ./e2e/ || status=$$?; \
	  sed -n '/fault suite table: begin/,/fault suite table: end/p' $(CURDIR)/docs/faults.md; exit $$status

.PHONY: bench-writer
bench-writer: ## writer throughput and latency at 20,000 events/s (needs make up)
	@set -a; . .state/env; set +a; cd services/writer && GOWORK=off go test -run '^$$' -bench . -benchtime=1x -timeout 30m ./cmd/writer

.PHONY: bench-chserver
bench-chserver: ## local ClickHouse server: insert and query rows/s, against chDB alone
	@cd deploy/local/chserver && GOWORK=off go test -run '^$$' -bench . -benchtime 5x ./internal/conformance

.PHONY: bench-enricher
bench-enricher: ## enricher benchmarks: enrichment step, reload, whole process on the real broker (needs make up)
	@set -a; . .state/env; set +a; cd services/enricher && \
	  GOWORK=off go test ./internal/enrich -run '^$$' -bench BenchmarkEnrich -benchtime 200000x && \
	  GOWORK=off go test ./internal/enrich -run '^$$' -bench BenchmarkReload -benchtime 10x && \
	  GOWORK=off go test ./internal/app -run '^$$' -bench BenchmarkEnricherProcess -benchtime 1x

.PHONY: rule-quality
rule-quality: ## the rule-quality test alone (every rule on 36 days of background, then with plants and decoys); its table into docs/rule-quality.md (needs make up)
	@set -a; . .state/env; set +a; cd services/simulator && VIGIE_RULE_QUALITY_OUT=$(CURDIR)/docs/rule-quality.md GOWORK=off go test -count=1 -timeout 40m -run '^TestRuleQuality$$' -v ./e2e | grep -v '^=== '

.PHONY: bench-correlator
bench-correlator: ## correlator: streaming throughput, state memory, event-to-alert latency, scheduled queries (needs make up)
	@set -a; . .state/env; set +a; cd services/correlator && \
	  GOWORK=off go test -run='^$$' -bench=BenchmarkStreaming -cpu=1 ./internal/stream/ && \
	  GOWORK=off go test -run='^$$' -bench=BenchmarkStateMemory -benchtime=1x ./internal/stream/ && \
	  GOWORK=off go test -run='^$$' -bench=BenchmarkEventToAlert -benchtime=50x ./internal/app/ && \
	  GOWORK=off go test -run='^$$' -bench=BenchmarkScheduledRules -benchtime=3x ./internal/sched/

.PHONY: lint
lint: ## go vet and staticcheck on every module; one version of each dependency across modules
	@.ci/depskew
	@test -x $(STATICCHECK) || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@for m in $(MODULES); do echo "lint $$m"; (cd $$m && GOWORK=off go vet ./... && GOWORK=off $(STATICCHECK) ./...); done

.PHONY: demo
demo: ## the whole pipeline on the 2025 case, with a report; runs until `make down` (DEMO_STOP=1 stops it)
	@$(LOCAL)/demo.sh

.PHONY: bench
bench: ## the whole pipeline at rising steady rates; the table goes to deploy/bench/results-<date>.md
	@$(LOCAL)/bench.sh

.PHONY: images
images: ## build every service image with Docker (needs a machine with a Docker daemon)
	@v=$$(git describe --tags --always --dirty 2>/dev/null || echo dev); r=$$(git rev-parse HEAD 2>/dev/null || echo unknown); \
	  for t in ingest enricher writer correlator vigiectl simulator; do docker build --target $$t --build-arg VERSION=$$v --build-arg REVISION=$$r -t vigie/$$t:$$v . || exit 1; done

.PHONY: oci
oci: ## assemble every image as an OCI layout in bin/oci without a daemon (push it with crane or skopeo)
	@v=$$(git describe --tags --always --dirty 2>/dev/null || echo dev); r=$$(git rev-parse HEAD 2>/dev/null || echo unknown); \
	  cd deploy/validate && VIGIE_OCI_DIR=$(CURDIR)/bin/oci VIGIE_OCI_VERSION=$$v VIGIE_OCI_REVISION=$$r GOWORK=off go test -count=1 -run '^TestImages$$' .

.PHONY: clean
clean: ## remove build outputs (keeps downloads in .cache and data in .state)
	rm -rf bin
