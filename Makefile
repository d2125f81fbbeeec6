# coiflow — the two commands that matter are `make run` and `make test`.
SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
GO           ?= go
TOOLS_DIR    := .tools
FUNCTIONS    := $(notdir $(wildcard functions/*))
BUILD_DIR    := .build
GOARCH_LAMBDA ?= arm64
FUZZTIME     ?= 60s

.PHONY: run test tools build lint unit fmt-check vet staticcheck cfn-lint invoke bench fuzz clean

## run: start the whole system locally (DynamoDB Local, moto, functions, sandboxes)
## (stop it with Ctrl-C, or: kill -INT <pid from .coiflow/local.json>)
run: tools
	@$(GO) build -o $(BUILD_DIR)/coiflow ./cmd/coiflow
	@exec $(BUILD_DIR)/coiflow run

## test: every test: format, vet, staticcheck, cfn-lint, unit, integration, end to end, packaging
test: tools lint
	$(GO) test -count=1 -timeout 30m ./...

## tools: install the npm-delivered local stand-ins into $(TOOLS_DIR) (ignored by git), and chromium (as root, apt-get) for the browser test
tools:
	@$(GO) run ./cmd/coiflow tools --dir $(TOOLS_DIR)

lint: fmt-check vet staticcheck cfn-lint

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

cfn-lint:
	@command -v cfn-lint >/dev/null || { echo "cfn-lint is missing: it comes with the machine image (pip package cfn-lint) and cannot be installed from the registries here"; exit 1; }
	cfn-lint template.yaml

## build: a bootstrap per function for Lambda (linux/$(GOARCH_LAMBDA), provided.al2023)
build:
	@for fn in $(FUNCTIONS); do \
	  echo "build $$fn ($(GOARCH_LAMBDA))"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_LAMBDA) $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' \
	    -o $(BUILD_DIR)/$(GOARCH_LAMBDA)/$$fn/bootstrap ./functions/$$fn; \
	done

## invoke: like `sam local invoke`: make invoke FN=webhook EVENT=events/webhook/cowbell-quote-status.json
invoke: tools
	$(GO) run ./cmd/coiflow invoke $(FN) $(EVENT)

## bench: the benchmarks behind the README's Performance section
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: each fuzz target for $(FUZZTIME)
fuzz:
	@for t in $$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)' --include='*_test.go' internal | awk '{print $$2}' | sort -u); do \
	  pkg=$$(grep -rlE "^func $$t\(" --include='*_test.go' internal | head -1 | xargs dirname); \
	  echo "fuzz $$t in ./$$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

clean:
	rm -rf $(BUILD_DIR) .coiflow
