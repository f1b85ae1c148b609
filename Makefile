# picoflow make targets; CI runs `make test`.
.PHONY: help build install test test/race lint generate bench demo agents ort

help: ## list targets
	@grep -E '^[a-z/]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# -buildvcs=auto stamps the commit into the binaries (records carry it as
# their analysis version), even where GOFLAGS turns it off.
build: ## build bin/picoflow and bin/picoflow-agent
	go build -buildvcs=auto -o bin/picoflow ./cmd/picoflow
	CGO_ENABLED=0 go build -buildvcs=auto -o bin/picoflow-agent ./cmd/picoflow-agent

install: ## go install picoflow and picoflow-agent into $(shell go env GOPATH)/bin (put it on PATH)
	go install -buildvcs=auto ./cmd/picoflow
	CGO_ENABLED=0 go install -buildvcs=auto ./cmd/picoflow-agent

test: ## run all tests (needs Debian python3-hyperspy and ../shared/data)
	go vet ./...
	go test -count=1 -timeout 30m ./...

test/race: ## run the tests with the race detector
	go test -race -count=1 -timeout 60m ./...

lint: ## gofmt and vet
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	go vet ./...

generate: ## regenerate the X-ray line table from HyperSpy
	go generate ./...

bench: build ## analysis vs HyperSpy, transfer vs cp, flow overhead
	./bin/picoflow bench
	go test -run '^$$' -bench . -benchtime 3x ./internal/analysis ./internal/upload/tusserver ./internal/catalog/...
	go test -run '^$$' -bench Movie600 -benchtime 1x ./internal/analysis/movie

demo: build ## the whole system for two minutes with a simulated microscope
	rm -rf out/demo
	./bin/picoflow demo --dir out/demo --addr 127.0.0.1:0 $(DEMO_FLAGS)

ort: ## fetch the ONNX Runtime library (YOLO detector) into .cache/onnxruntime
	./scripts/fetch-onnxruntime.sh

agents: ## cross-build the agent for Windows, macOS and Linux
	for t in windows/amd64 darwin/arm64 darwin/amd64 linux/amd64 linux/arm64; do \
	  CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} go build -o bin/picoflow-agent-$${t%/*}-$${t#*/} ./cmd/picoflow-agent || exit 1; done
