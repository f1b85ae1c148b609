//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/store"
)

const argsEnv = "PICOFLOW_TEST_ARGS"

// workers is the test binary's analysis worker registry (TestMain).
var workers *sandbox.Registry

// TestMain lets the test binary act as the picoflow binary: the crash
// tests start it as real server and agent processes and kill them.
func TestMain(m *testing.M) {
	workers = sandbox.NewRegistry()
	analysis.RegisterWorkers(workers)
	workers.Main()
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		// Started as the picoflow binary by a server under test (a batch
		// block's endpoint): the arguments are on the command line.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, workers, os.Args[1:])
		stop()
		os.Exit(code)
	}
	if a := os.Getenv(argsEnv); a != "" {
		var args []string
		json.Unmarshal([]byte(a), &args)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, workers, args)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd *exec.Cmd
	log string
}

func start(t *testing.T, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	b, _ := json.Marshal(args)
	log := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), argsEnv+"="+string(b)), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// If the test binary dies, so do its servers and agents.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &proc{cmd: cmd, log: log}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type rig struct {
	dir, data, base, addr, token, folder, ledger string
}

func newRig(t *testing.T) *rig {
	dir := t.TempDir()
	r := &rig{dir: dir, data: filepath.Join(dir, "server"), addr: freeAddr(t), folder: filepath.Join(dir, "instrument"), ledger: filepath.Join(dir, "agent.db")}
	r.base = "http://" + r.addr
	db, err := store.Open(context.Background(), filepath.Join(r.data, "picoflow.db"))
	if err != nil {
		os.MkdirAll(r.data, 0o755)
		if db, err = store.Open(context.Background(), filepath.Join(r.data, "picoflow.db")); err != nil {
			t.Fatal(err)
		}
	}
	r.token, err = auth.NewTokens(db.Write, db.Read).Create(context.Background(), "test", "agent:pc", auth.RoleAgent, auth.RoleAdmin)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(r.folder, 0o755)
	return r
}

func (r *rig) server(t *testing.T) *proc {
	p := start(t, r.dir, "server", nil, "server", "--data", r.data, "--addr", r.addr)
	healthy(t, "server", r.base)
	return p
}

// healthy waits until the server at base answers /healthz.
func healthy(t *testing.T, name, base string) {
	eventually(t, 30*time.Second, name+" health", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

// replica starts a server process on PostgreSQL (url) and a shared data
// directory, and waits until it answers.
func replica(t *testing.T, dir, name, url, data, addr, rescueAfter string) *proc {
	p := start(t, dir, name, nil, "server", "--db", url, "--data", data, "--addr", addr, "--rescue-after", rescueAfter)
	healthy(t, name, "http://"+addr)
	return p
}

func (r *rig) agent(t *testing.T, extra ...string) *proc {
	args := append([]string{"agent", "run", "--server", r.base, "--folder", r.folder + "=hyperspectral", "--ledger", r.ledger, "--settle", "200ms"}, extra...)
	return start(t, r.dir, "agent", []string{"PICOFLOW_TOKEN=" + r.token}, args...)
}

func (r *rig) entry(t *testing.T) *agent.Entry {
	es, err := agent.ReadLedger(context.Background(), r.ledger, 10)
	if err != nil || len(es) == 0 {
		return nil
	}
	return es[0]
}

type runJSON struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	UploadID string `json:"upload_id"`
	Error    string `json:"error"`
	Steps    []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Attempts int    `json:"attempts"`
	} `json:"steps"`
}

func (r *rig) get(t *testing.T, path string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, r.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (r *rig) runsFor(t *testing.T, sha string) []runJSON {
	var out struct{ Runs []runJSON }
	if err := r.get(t, "/api/v1/files/"+sha, &out); err != nil {
		t.Fatal(err)
	}
	return out.Runs
}

func writeSI(t *testing.T, path string, mb int) {
	if _, err := simulate.WriteSpectrumImage(context.Background(), path, simulate.SpectrumImageSpec{
		Width: 256, Height: 256, Support: "C", Elements: []string{"Fe", "Cu"}, Seed: 9,
		CountsPerPixel: simulate.CountsForSize(int64(mb)<<20, 256, 256)}); err != nil {
		t.Fatal(err)
	}
}

// TestAgentKill9MidUpload kills the agent while it uploads; the restarted
// agent resumes the same upload, and exactly one flow runs.
func TestAgentKill9MidUpload(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	writeSI(t, filepath.Join(r.folder, "si.emd"), 40)
	r.server(t)
	a := r.agent(t, "--max-mb-per-s", "10")
	var before *agent.Entry
	eventually(t, 60*time.Second, "the upload to be under way", func() bool {
		e := r.entry(t)
		if e == nil || e.State != agent.StateUploading || e.UploadURL == "" {
			return false
		}
		// The server's copy grows as bytes arrive (asking over HTTP would
		// interrupt the upload: tus hands the lock to the asker).
		fi, err := os.Stat(filepath.Join(r.data, "uploads", e.UploadURL[strings.LastIndex(e.UploadURL, "/")+1:]))
		if err != nil {
			return false
		}
		off := fi.Size()
		if err == nil && off > 2<<20 && off < e.Size/2 {
			before = e
			return true
		}
		return false
	})
	a.kill()
	if e := r.entry(t); e.State != agent.StateUploading {
		t.Fatalf("after kill: %s", e.State)
	}
	r.agent(t, "--max-mb-per-s", "10")
	r.doneOnce(t, before)
}

// allSucceeded waits until the server has n runs, all finished, logging
// their states every 10 s, and requires each to have succeeded.
func (r *rig) allSucceeded(t *testing.T, n int, within time.Duration, what string) {
	t.Helper()
	var runs []struct{ State, Error string }
	last := time.Now()
	eventually(t, within, what, func() bool {
		runs = nil
		if err := r.get(t, "/api/v1/runs?limit=1000", &runs); err != nil {
			return false
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			states := map[string]int{}
			for _, x := range runs {
				states[x.State]++
			}
			t.Logf("runs: %v", states)
		}
		done := 0
		for _, x := range runs {
			if x.State == "succeeded" || x.State == "failed" {
				done++
			}
		}
		return len(runs) == n && done == n
	})
	for _, x := range runs {
		if x.State != "succeeded" {
			t.Fatalf("run %s: %s", x.State, x.Error)
		}
	}
}

// onlyRun waits up to within for the rig's file to be done (look, when
// not nil, sees its ledger entry at every look) and checks it has exactly
// one run, which succeeded; it returns the runs.
func (r *rig) onlyRun(t *testing.T, within time.Duration, look func(*agent.Entry)) []runJSON {
	t.Helper()
	eventually(t, within, "the file to be done", func() bool {
		e := r.entry(t)
		if look != nil {
			look(e)
		}
		return e != nil && (e.State == agent.StateDone || e.State == agent.StateFailed)
	})
	e := r.entry(t)
	if e.State != agent.StateDone {
		t.Fatalf("file %s: %s", e.State, e.Error)
	}
	runs := r.runsFor(t, e.SHA256)
	if len(runs) != 1 || runs[0].State != "succeeded" {
		t.Fatalf("runs %+v", runs)
	}
	return runs
}

// doneOnce waits for the rig's file to be done and checks it ran once, on
// the upload that was under way (before), which was resumed, not restarted.
func (r *rig) doneOnce(t *testing.T, before *agent.Entry) {
	t.Helper()
	runs := r.onlyRun(t, 90*time.Second, nil)
	if !strings.HasSuffix(before.UploadURL, "/"+runs[0].UploadID) {
		t.Fatalf("the run used upload %s, not the interrupted %s: the upload restarted", runs[0].UploadID, before.UploadURL)
	}
}

// TestServerKill9MidFlow kills the server while the analysis runs; the
// restarted server re-runs that step, and the file ends catalogued once.
func TestServerKill9MidFlow(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	writeSI(t, filepath.Join(r.folder, "si.emd"), 60)
	srv := r.server(t)
	r.agent(t)
	var run runJSON
	eventually(t, 60*time.Second, "the analysis to run", func() bool {
		e := r.entry(t)
		if e == nil || e.RunID == "" {
			return false
		}
		if err := r.get(t, "/api/v1/runs/"+e.RunID, &run); err != nil {
			return false
		}
		return len(run.Steps) > 1 && run.Steps[1].State == "running"
	})
	srv.kill()
	r.server(t)
	if err := r.get(t, "/api/v1/runs/"+run.ID+"?wait=60s", &run); err != nil {
		t.Fatal(err)
	}
	if run.State != "succeeded" {
		t.Fatalf("run after restart: %s %s", run.State, run.Error)
	}
	if run.Steps[1].Attempts != 2 {
		t.Errorf("analyze ran %d times, want 2 (interrupted, then re-run)", run.Steps[1].Attempts)
	}
	eventually(t, 60*time.Second, "the agent to learn the outcome", func() bool {
		e := r.entry(t)
		return e != nil && e.State == agent.StateDone
	})
	if runs := r.runsFor(t, run.ID[:0]+r.entry(t).SHA256); len(runs) != 1 {
		t.Fatalf("%d runs for the file", len(runs))
	}
	var res struct{ Total int }
	if err := r.get(t, "/api/v1/records", &res); err != nil || res.Total != 1 {
		t.Fatalf("catalog: %d records (%v)", res.Total, err)
	}
}

// TestAgentOffline starts the agent before the server exists: the file
// waits in the ledger and goes through once the server comes up.
func TestAgentOffline(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	writeSI(t, filepath.Join(r.folder, "early.emd"), 5)
	r.agent(t)
	eventually(t, 30*time.Second, "the agent to try and fail to reach the server", func() bool {
		e := r.entry(t)
		return e != nil && e.State == agent.StateReady && e.Attempts > 0 && strings.Contains(e.Error, "unreachable")
	})
	r.server(t)
	eventually(t, 90*time.Second, "the file to be done", func() bool {
		e := r.entry(t)
		return e != nil && e.State == agent.StateDone
	})
}

// TestAgentWrongToken: an agent whose token the server refuses says so and
// does not start (it checks its configuration first); the files wait and go
// once it is restarted with the right token; nothing is marked failed.
func TestAgentWrongToken(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	writeSI(t, filepath.Join(r.folder, "early.emd"), 5)
	r.server(t)
	good := r.token
	r.token = "pf_" + strings.Repeat("0", 40)
	// A token the server refuses: the agent says so and does not start
	// (it checks its configuration first); the file stays where it is.
	a := r.agent(t)
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }()
	select {
	case err := <-exited:
		b, _ := os.ReadFile(a.log)
		if err == nil || !strings.Contains(string(b), "refuses this agent's token") {
			t.Fatalf("agent with a refused token: exit %v, log:\n%s", err, b)
		}
	case <-time.After(30 * time.Second):
		a.kill()
		t.Fatal("the agent with a refused token did not stop")
	}
	if e := r.entry(t); e != nil && e.State != agent.StateReady && e.State != agent.StateSeen {
		t.Fatalf("a refused token changed the file's state to %s", e.State)
	}
	r.token = good
	r.agent(t)
	eventually(t, 90*time.Second, "the file to be done", func() bool {
		e := r.entry(t)
		return e != nil && e.State == agent.StateDone
	})
}

// TestFileWaitsForItsFlow: a file for a flow the server does not offer (its
// configuration changed while the agent ran) is not failed: the agent keeps
// it, says why in its ledger, and sends it once a server offers the flow
// again.
func TestFileWaitsForItsFlow(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	flows := filepath.Join(r.dir, "flows.yaml")
	os.WriteFile(flows, []byte("flows:\n  - name: eds-v2\n    steps: [{name: transfer}, {name: analyze}, {name: publish}]\n"), 0o644)
	withFlow := func() *proc {
		p := start(t, r.dir, "server", nil, "server", "--data", r.data, "--addr", r.addr, "--flows", flows)
		healthy(t, "server", r.base)
		return p
	}
	// The agent starts while no server answers (it cannot check the flow,
	// and waits); then a server without the flow comes up.
	a := start(t, r.dir, "agent", []string{"PICOFLOW_TOKEN=" + r.token}, "agent", "run", "--server", r.base,
		"--folder", r.folder+"=eds-v2", "--ledger", r.ledger, "--settle", "200ms")
	eventually(t, 30*time.Second, "the agent to start", func() bool {
		b, _ := os.ReadFile(a.log)
		return strings.Contains(string(b), "cannot check the flows now")
	})
	srv := r.server(t) // the built-in flows only
	writeSI(t, filepath.Join(r.folder, "v2.emd"), 2)
	eventually(t, 60*time.Second, "the file to wait for its flow", func() bool {
		e := r.entry(t)
		return e != nil && e.State == agent.StateReady && strings.Contains(e.Error, `waiting for the server to offer flow "eds-v2"`)
	})
	time.Sleep(2 * time.Second)
	if e := r.entry(t); e.State != agent.StateReady {
		t.Fatalf("a file for a flow not offered went to %s: %s", e.State, e.Error)
	}
	srv.kill()
	withFlow()
	eventually(t, 120*time.Second, "the file to be done once the flow is offered", func() bool {
		e := r.entry(t)
		return e != nil && e.State == agent.StateDone
	})
}

// TestKill9DuringParallelCompressedUpload kills the agent, or the server,
// while a file goes as two parallel parts, each compressed on the wire.
// The restarted process goes on with the same parts (none is made again),
// the server joins them into the file with its SHA-256 checked, exactly
// one run starts, and the parts are removed once their file was stored.
func TestKill9DuringParallelCompressedUpload(t *testing.T) {
	t.Parallel()
	for _, who := range []string{"agent", "server"} {
		t.Run(who, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			writeSI(t, filepath.Join(r.folder, "si.emd"), 40)
			srv := r.server(t)
			flags := []string{"--max-mb-per-s", "6", "--streams", "2", "--compress", "always"}
			a := r.agent(t, flags...)
			var before *agent.Entry
			var parts []string
			partSize := func(p string) int64 {
				fi, err := os.Stat(filepath.Join(r.data, "uploads", p[strings.LastIndex(p, "/")+1:]))
				if err != nil {
					return -1
				}
				return fi.Size()
			}
			eventually(t, 60*time.Second, "the parts to be under way", func() bool {
				e := r.entry(t)
				if e == nil || e.State != agent.StateUploading || !strings.HasPrefix(e.UploadURL, "parts:") {
					return false
				}
				ps := strings.Fields(strings.TrimPrefix(e.UploadURL, "parts:"))
				var got int64
				for _, p := range ps {
					got += max(0, partSize(p))
				}
				if len(ps) == 2 && got > 4<<20 && got < e.Size/2 {
					before, parts = e, ps
					return true
				}
				return false
			})
			if who == "agent" {
				a.kill()
				r.agent(t, flags...)
			} else {
				srv.kill()
				r.server(t)
			}
			runs := r.onlyRun(t, 120*time.Second, func(e *agent.Entry) {
				if e != nil && strings.HasPrefix(e.UploadURL, "parts:") && e.UploadURL != before.UploadURL {
					t.Fatalf("new parts after the kill: %s, were %s", e.UploadURL, before.UploadURL)
				}
			})
			for _, p := range parts {
				if strings.HasSuffix(p, "/"+runs[0].UploadID) {
					t.Fatalf("the run started on part %s", p)
				}
				if n := partSize(p); n >= 0 {
					t.Fatalf("part %s (%d bytes) left behind", p, n)
				}
			}
		})
	}
}
