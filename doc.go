// Package picoflow is the code map of the picoflow module. It holds no code.
//
//	cmd/picoflow                  the binary: server, agent, endpoint, demo, analyze, reanalyze, doctor, stats, token,
//	                              user, simulate, bench
//	cmd/picoflow-agent            the small instrument-PC binary (CGO off): run, status
//	internal/agent                watch -> check complete -> hash -> ledger (SQLite outbox) -> upload -> flow;
//	                              sidecar files describe an acquisition
//	internal/agentcli             the agent's command line, shared by both binaries
//	internal/watch                fsnotify + periodic rescan + settle detection
//	internal/upload               tus 1.0 client for the agent: resumable, rate-capped, zstd on the wire when it
//	                              pays, small files in the request that creates them, parallel parts joined by
//	                              concatenation on long fat links, a ping that keeps the connection open
//	internal/upload/tusserver     tusd mount with metadata checks, a zero-copy PATCH (bodies over 8 MiB; smaller
//	                              ones read through the server, which keeps the connection), zstd PATCH bodies, creation
//	                              with upload, files synced in the background as they arrive, small
//	                              compressed bodies made durable by a journal, hashing on arrival,
//	                              parallel parts written in place and joined without a copy
//	internal/replicas             several server replicas for a client: move on when one is down
//	internal/linkem               an emulated network link (rate, RTT, jitter, queue, TCP-like window) for
//	                              tests and benchmarks
//	internal/command              facility-configured commands for flow steps (server or endpoint)
//	internal/server               the facility service: ingest, flow steps, REST API, endpoint protocol, Start/Stop
//	internal/compute              tasks for compute endpoints (leases), the endpoint runner, block scaling;
//	                              Provider backends local/ slurm/ pbs/; computetest/
//	internal/flow                 YAML flows, runs and steps on River jobs, events, statistics
//	internal/campaign             re-analysis campaigns: records by search, one keyed run each, throttled, resumable
//	internal/buildinfo            which build is running (module version, VCS revision), version ordering
//	internal/logging              the services' loggers: text or JSON lines (--log-format)
//	internal/configfile           a service's YAML settings into its flags (--config; flags win)
//	internal/sqlitewal            open SQLite in WAL mode, safe when several processes create one file at once
//	internal/store                SQLite: one writer, a read pool, River and picoflow migrations
//	internal/catalog              records and their versions, ACLs, search (field terms) and facets (Index seam);
//	                              sqlite/ FTS5, postgres/; catalogtest/
//	internal/pgtest               a real PostgreSQL for tests
//	internal/auth                 API tokens (hashed), local accounts, sessions, principals
//	internal/box                  the whole system in one process (demo, end-to-end tests)
//	internal/sandbox              run a function in a memory-limited child process
//	internal/emd                  EMD (HDF5) read access: Velox and NCEM, SpectrumStream decoding
//	internal/emd/superblock       stdlib HDF5 superblock check (is the file complete?)
//	internal/emd/emdtest          real test files (../shared/data) and the HyperSpy reference
//	internal/record               the DataCite-based catalogue record of a file, its provenance, version diffs
//	internal/analysis             picks and runs the analysis for a file, writes record.json
//	internal/analysis/hyperspectral  EDS: zero peak, model fit (NNLS: B-spline background + element
//	                              families), fitted element maps, Cliff-Lorimer quantification;
//	                              testdata/xraysim.py is the independent (xraylib) simulator of its tests
//	internal/analysis/movie       movies: 8-bit scaling, MP4 (ffmpeg), detection (detect.go, background.go,
//	                              segment.go), tracking (track.go, linking.go: gaps, fragments, hidden particles,
//	                              late merges, events; parted.go: touching pairs that part again),
//	                              measurements and figures (measure.go), evaluation; testdata/moviesim.py is
//	                              the independent (numpy/scipy) movie generator of its tests
//	internal/analysis/movie/yolo  YOLOv8 ONNX models through ONNX Runtime; yolotest/ builds test models
//	internal/portal               web pages: search (search.go), records with the spectrum viewer, versions and
//	                              edits (recordpage.go, edit.go), runs (runs.go), re-analysis campaigns,
//	                              sign-in (signin.go, oidc.go); static/ holds the JS and CSS
//	internal/checksum             the SHA-256 of a file
//	internal/xray                 characteristic X-ray line table (generated from HyperSpy), atomic
//	                              physics for k-factors (generated from xraylib)
//	internal/chart                PNG figures: calibrated maps (true aspect, colour bar beside, scale bar),
//	                              element overlays, log spectra
//	internal/simulate             synthetic Velox EMD files with ground truth
//	deploy/systemd                systemd units (server, endpoint, agent user service), verified in tests
//	scripts/setup.sh              the README's two commands: install what the demo or the tests need, run them
//	third_party/scigolib-hdf5     scigolib/hdf5 v0.14.1 with one patch (groups with many members)
package picoflow
