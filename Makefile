# Beacon: bare-metal LoadBalancer and ExternalIP provider for Kubernetes.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BIN       ?= bin
CRD_DIR   := charts/beacon/crds
# testbin prints the directory holding kube-apiserver, etcd and helm as its last line.
TESTBIN    = $(shell hack/testbin.sh | tail -n 1)
GO_TEST_FLAGS ?= -count=1

.PHONY: all deps build test generate verify testbin bench-alloc bench-member bench-failover bench-bgp bench-dataplane bench-scale demo demo-down clean image chart-test chaos kind-up kind-down e2e-kind e2e-kind-ops bench-kind-failover

all: build

deps: ## Check the Debian packages the lab and tests drive (as root: install the missing ones)
	@hack/deps.sh

build: ## Build every binary into ./bin
	$(GO) build -o $(BIN)/ ./cmd/...

testbin: ## Build and cache kube-apiserver, etcd and helm; prints their directory last
	@hack/testbin.sh

generate: ## Regenerate deepcopy code, CRDs and docs/reference.md
	@cg=$$(hack/tools.sh controller-gen); \
	$$cg object paths=./config/... && \
	$$cg crd:crdVersions=v1,generateEmbeddedObjectMeta=false paths=./config/... output:crd:artifacts:config=$(CRD_DIR) && \
	$(GO) run ./hack/crdref -crds $(CRD_DIR) -out docs/reference.md

verify: ## gofmt, go vet, golangci-lint, and generated files up to date
	@hack/verify.sh

# Packages that bring up the lab (one per machine, behind a lock).
LAB_PKGS := ./lab/ ./test/chart/ ./test/e2e/

# The lab packages run one at a time, after the rest: sharing 2 cores with
# envtest and kernel tests delays heartbeats and BFD enough to cause
# spurious failovers, and they would only queue on the lab lock anyway.
test: deps verify ## Everything CI runs
	@assets=$$(hack/testbin.sh | tail -n 1); \
	export KUBEBUILDER_ASSETS=$$assets BEACON_REQUIRE_ENVTEST=1; \
	$(GO) test $(GO_TEST_FLAGS) -timeout 20m $$($(GO) list ./... | grep -v -e '/test/e2e$$' -e '/test/chart$$' -e '/lab$$' -e '/test/kind$$'); \
	$(GO) test $(GO_TEST_FLAGS) -p 1 -timeout 20m $(LAB_PKGS)
	@# Fuzz budgets are execution counts, not durations: go1.26's fuzz
	@# coordinator can fail a duration-bounded run with "context deadline
	@# exceeded" and no crasher under load (golang/go#75804).
	$(GO) test -run '^$$' -fuzz '^FuzzParseBlock$$' -fuzztime 80000x ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzAllocator$$' -fuzztime 20000x ./allocator/
	$(GO) test -run '^$$' -fuzz '^FuzzParseARP$$' -fuzztime 50000x ./speaker/l2/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNDP$$' -fuzztime 50000x ./speaker/l2/
	$(GO) test -run '^$$' -fuzz '^FuzzResponderHandle$$' -fuzztime 50000x ./speaker/l2/
	$(GO) test -run '^$$' -fuzz '^FuzzConvert$$' -fuzztime 30000x ./migrate/metallb/

bench-alloc: ## 1,000 LoadBalancer Services against a real API server, vs a bare status-patch baseline
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets $(GO) run ./test/bench/alloc

bench-member: ## Membership at 100/1,000/5,000 simulated speakers with loss and stalls: all-to-all vs version 3 watchers (5,000: about 4 GB and tens of minutes)
	$(GO) run ./test/bench/member

bench-failover: ## L2 failover in the lab: kill / link-cut the announcer 20 times each, LAN carrier loss with heartbeats on a second NIC 10 times (root)
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets BEACON_BENCH=failover $(GO) test -count=1 -timeout 30m -run '^TestBenchFailover(Carrier)?$$' -v ./test/e2e/ | grep -v '^=== RUN'

chaos: ## Chaos scenarios (test/chaos: controller churn on envtest, API server outage and speaker/link faults in the lab; root) with their counts: requests sent, failed, IPs duplicated, IPs changed
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets BEACON_REQUIRE_ENVTEST=1 BEACON_CHAOS=1 $(GO) test -count=1 -timeout 60m -v ./test/chaos/ | grep -E '^(CHAOS|--- |FAIL|ok|PASS)|_test.go:'

bench-bgp: ## BGP in the lab: announce latency, BFD link cut, graceful restart, 20 runs each (root)
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets BEACON_BENCH=bgp $(GO) test -count=1 -timeout 30m -run '^TestBenchBGP$$' -v ./test/e2e/ | grep -v '^=== RUN'

bench-dataplane: ## nftables dataplane vs kube-proxy v1.36.3 (nftables mode) in the lab: 1k/10k Services, one change, LB throughput (root)
	@assets=$$(WITH_KUBE_PROXY=1 hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets BEACON_BENCH=dataplane $(GO) test -count=1 -timeout 50m -run '^TestBenchDataplane$$' -v ./test/bench/dataplane/ | grep -v '^=== RUN'

SCALE_SERVICES ?= 10000
# Each phase of the busy-node run (no load, then a CPU hog); the issue's
# figure is 10m: make bench-scale HOG=10m.
HOG ?= 1m
# The speaker's CPU requests the busy-node run compares, each a phase under
# the hog with kubelet's CPU weights ("none": no cgroups).
HOG_REQUESTS ?= 50m,200m
# SPEAKER_BASELINE=path/to/beacon-speaker also measures another build (say, of an older commit) in the memory case.
SPEAKER_BASELINE ?=
bench-scale: ## Memory vs kube-proxy, speaker API requests (L2 in the lab, BGP with 8 in-process speakers), controller backlog at SCALE_SERVICES, wake-up lateness by scheduling class, busy nodes for HOG per phase (root)
	@assets=$$(WITH_KUBE_PROXY=1 hack/testbin.sh | tail -n 1); \
	export KUBEBUILDER_ASSETS=$$assets; \
	SCALE_SERVICES=$(SCALE_SERVICES) BEACON_SPEAKER_BASELINE=$(SPEAKER_BASELINE) BEACON_BENCH=scale $(GO) test -count=1 -timeout 90m -run '^TestBenchScale$$' -v ./test/bench/scale/ | grep -v '^=== RUN'; \
	echo; BEACON_BENCH=scale $(GO) test -count=1 -timeout 10m -run '^TestAgentsAPILoadBGP$$' -v ./speaker/agent/ | grep -v -e '^=== RUN' -e '--- PASS' -e '^PASS' -e '^ok '; \
	echo; echo "controller backlog at $(SCALE_SERVICES) Services (bench-alloc)"; \
	$(GO) run ./test/bench/alloc -services $(SCALE_SERVICES) -burst=false; \
	BEACON_BENCH=wakeup $(GO) test -count=1 -timeout 10m -run '^TestBenchWakeup$$' -v ./test/e2e/ | grep -v '^=== RUN'; \
	BEACON_BENCH=hog BEACON_HOG_DURATION=$(HOG) BEACON_HOG_REQUESTS=$(HOG_REQUESTS) $(GO) test -count=1 -timeout 90m -run '^TestBenchHog$$' -v ./test/e2e/ | grep -v '^=== RUN'

# No build prerequisite: the demo checks its packages before it builds.
demo: ## The lab with Beacon: a LoadBalancer Service answering on its EXTERNAL-IP (root)
	@GO=$(GO) hack/demo.sh

demo-down: build ## Remove the demo lab (namespaces, links, processes)
	@bin/beacon-lab down

IMAGE     ?= beacon:dev
# 1: no registry needed (Dockerfile.local: host-built binaries on a locally
# made minimal base); 0: the release build of ./Dockerfile (distroless).
IMAGE_OFFLINE ?= 0
# docker if present, else podman; IMAGE_TOOL=podman forces one.
IMAGE_TOOL ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)

image: ## Build the container image (both daemons) with docker or podman: make image IMAGE=repo/beacon:tag
	@if [ -z "$(IMAGE_TOOL)" ]; then \
	  echo "make image: neither docker nor podman is installed; install one (or build the binaries with 'make build' and package them yourself, see Dockerfile)" >&2; \
	  exit 1; \
	fi
	@if ! $(IMAGE_TOOL) info >/dev/null 2>&1; then \
	  echo "make image: $(IMAGE_TOOL) is installed but cannot reach its engine ('$(IMAGE_TOOL) info' fails); start it and retry" >&2; \
	  exit 1; \
	fi
	@if [ "$(IMAGE_OFFLINE)" = 1 ]; then hack/image-local.sh $(IMAGE_TOOL) $(IMAGE); else \
	  $(IMAGE_TOOL) build --build-arg VERSION=$$(git describe --tags --always --dirty 2>/dev/null || echo dev) \
	    --build-arg COMMIT=$$(git rev-parse HEAD 2>/dev/null) -t $(IMAGE) .; fi

chart-test: ## Helm chart: lint, template goldens, install/upgrade/uninstall and RBAC proof on a real API server (lab part needs root)
	@assets=$$(hack/testbin.sh | tail -n 1); \
	KUBEBUILDER_ASSETS=$$assets $(GO) test $(GO_TEST_FLAGS) -timeout 20m -v ./test/chart/

kind-up: ## kind cluster built offline (podman): Beacon by helm, FRR router, client; KEY=value lines last (root; KUBE_PROXY_MODE=iptables|nftables|none, KIND_IP_FAMILY=ipv4|dual)
	@hack/kind/up.sh

kind-down: ## Remove every container, network, image and file kind-up made
	@hack/kind/down.sh

# Which kind tests each row of KIND_ROWS runs: all, or matrix (the checks every kube-proxy mode must pass).
KIND_ROW_TESTS ?= all
e2e-kind: ## End-to-end tests on the cluster of make kind-up (skipped without it); KIND_ROWS="iptables nftables none" makes a cluster per kube-proxy mode and tests each (KIND_ROW_TESTS=matrix: only the per-mode checks)
ifeq ($(strip $(KIND_ROWS)),)
	$(GO) test -count=1 -timeout 30m -v ./test/kind/
else
	GO=$(GO) KIND_ROW_TESTS=$(KIND_ROW_TESTS) hack/kind/rows.sh $(KIND_ROWS)
endif

e2e-kind-ops: ## Operations under steady traffic on the kind cluster (part of e2e-kind), with the Immediate failback control case: rolling restart, helm upgrade, drains, failback, uninstall and reinstall
	BEACON_KIND_OPS=1 $(GO) test -count=1 -timeout 40m -v -run 'TestSpeakerRollingRestart|TestHelmUpgrade|TestDrain|TestGracefulDrainLabel|TestFailback|TestUninstall' ./test/kind/

bench-kind-failover: ## Freeze the announcing kind node under traffic: L2/BGP time without a reply, p50/p99 (BEACON_KIND_RUNS=10)
	BEACON_KIND_BENCH=1 $(GO) test -count=1 -timeout 30m -v -run 'TestBenchFailover$$' ./test/kind/

clean:
	rm -rf $(BIN)
