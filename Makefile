# picoflow make targets; CI runs `make test`.
.PHONY: help build test test/race lint generate bench demo

help: ## list targets
	@grep -E '^[a-z/]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/picoflow
	go build -o bin/picoflow ./cmd/picoflow

test: ## run all tests (needs Debian python3-hyperspy and ../shared/data)
	go vet ./...
	go test -count=1 ./...

test/race: ## run the tests with the race detector
	go test -race -count=1 ./...

lint: ## gofmt and vet
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	go vet ./...

generate: ## regenerate the X-ray line table from HyperSpy
	go generate ./...

bench: build ## picoflow analyze vs HyperSpy + matplotlib on a 91 MB spectrum image
	./bin/picoflow bench

demo: build ## simulate a spectrum image and analyse it
	./bin/picoflow simulate --kind si --size 256 --size-mb 10 -o out/demo/si.emd
	./bin/picoflow analyze out/demo/si.emd -o out/demo/si
