# Beacon: bare-metal LoadBalancer and ExternalIP provider for Kubernetes.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BIN       ?= bin
CRD_DIR   := charts/beacon/crds
# testbin prints the directory holding kube-apiserver, etcd and helm as its last line.
TESTBIN    = $(shell hack/testbin.sh | tail -n 1)
GO_TEST_FLAGS ?= -count=1

.PHONY: all build test generate verify testbin bench-alloc bench-failover bench-dataplane demo demo-down clean

all: build

build: ## Build every binary into ./bin
	$(GO) build -o $(BIN)/ ./cmd/...

testbin: ## Build and cache kube-apiserver, etcd and helm; prints their directory last
	@hack/testbin.sh

generate: ## Regenerate deepcopy code and CRDs
	@cg=$$(hack/tools.sh controller-gen); \
	$$cg object paths=./config/... && \
	$$cg crd:crdVersions=v1,generateEmbeddedObjectMeta=false paths=./config/... output:crd:artifacts:config=$(CRD_DIR)

verify: ## gofmt, go vet, golangci-lint, and generated files up to date
	@hack/verify.sh

test: verify ## Everything CI runs
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets BEACON_REQUIRE_ENVTEST=1 $(GO) test $(GO_TEST_FLAGS) -timeout 20m ./...
	$(GO) test -run '^$$' -fuzz FuzzParseBlock -fuzztime 10s ./config/

bench-alloc: ## 1,000 LoadBalancer Services against a real API server, vs a bare status-patch baseline
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets $(GO) run ./test/bench/alloc

bench-failover: ## L2 failover in the lab: kill / link-cut the announcer 20 times each (root)
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets BEACON_BENCH=failover $(GO) test -count=1 -timeout 30m -run '^TestBenchFailover$$' -v ./test/e2e/ | grep -v '^=== RUN'

bench-dataplane: ## nftables dataplane vs kube-proxy v1.36.3 (nftables mode) in the lab: 1k/10k Services, one change, LB throughput (root)
	@assets=$$(WITH_KUBE_PROXY=1 hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets BEACON_BENCH=dataplane $(GO) test -count=1 -timeout 50m -run '^TestBenchDataplane$$' -v ./test/bench/dataplane/ | grep -v '^=== RUN'

demo: build ## The lab with Beacon: a LoadBalancer Service answering on its EXTERNAL-IP (root)
	@hack/demo.sh

demo-down: build ## Remove the demo lab (namespaces, links, processes)
	@bin/beacon-lab down

clean:
	rm -rf $(BIN)
