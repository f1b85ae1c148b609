//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/pgtest"
)

// needSlurm fails the test when the Slurm cluster is not up (CI starts it).
func needSlurm(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("sinfo", "-h", "-o", "%T").CombinedOutput(); err != nil || len(out) == 0 {
		t.Fatalf("no Slurm cluster (run scripts/start-slurm.sh as root): %v %s", err, out)
	}
}

// TestServerStartsSlurmBlocks: `picoflow server --provider slurm` submits an
// endpoint block to the real Slurm cluster when hpc work waits; the block's
// endpoint runs the flows (the analysis, and a command given to the blocks
// with --block-command) and exits when idle. The server lists the block
// with its node start-up time and the endpoint with its tasks, and exports
// the start-up time to Prometheus.
func TestServerStartsSlurmBlocks(t *testing.T) {
	t.Parallel()
	needSlurm(t)
	const n = 3
	r := newRig(t)
	flows := filepath.Join(r.dir, "flows.yaml")
	os.WriteFile(flows, []byte(`flows:
  - name: hpc
    steps:
      - {name: transfer}
      - {name: analyze, params: {where: endpoint}}
      - {name: size, type: command, params: {command: size, where: endpoint}}
      - {name: publish}
`), 0o644)
	start(t, r.dir, "server", nil, "server", "--data", r.data, "--addr", r.addr, "--flows", flows,
		"--provider", "slurm", "--max-blocks", "1", "--block-idle", "3s", "--command-memory-mb", "256",
		"--block-command", `size=sh -c 'printf "{\"bytes\": %d}" $(wc -c < "$PICOFLOW_INPUT") > result.json'`)
	healthy(t, "server", r.base)
	sendLoad(t, r.dir, n, []string{r.base}, r.token, "hpc", 24, nil)
	r.allSucceeded(t, n, 120*time.Second, "the hpc runs to finish")
	var runs []struct{ ID string }
	if err := r.get(t, "/api/v1/runs?limit=10", &runs); err != nil || len(runs) != n {
		t.Fatalf("runs: %v", err)
	}
	var one struct {
		Size  int64
		Steps []struct {
			Name, Where string
			Data        json.RawMessage
		}
	}
	if err := r.get(t, "/api/v1/runs/"+runs[0].ID, &one); err != nil {
		t.Fatal(err)
	}
	var data struct{ Bytes int64 }
	if len(one.Steps) != 4 || json.Unmarshal(one.Steps[2].Data, &data) != nil || data.Bytes != one.Size || !strings.HasPrefix(one.Steps[2].Where, "block-") {
		t.Fatalf("the command on the block: %+v (data %s)", one, one.Steps[2].Data)
	}
	var view struct {
		Endpoints []struct {
			Name        string
			Done, Alive any
		}
		Blocks []struct {
			ID, Name, State string
			StartupS        *float64 `json:"startup_s"`
		}
	}
	// The block is listed while it runs: it idles 3 s after the last task.
	if err := r.get(t, "/api/v1/compute/endpoints", &view); err != nil {
		t.Fatal(err)
	}
	done := 0.0
	for _, e := range view.Endpoints {
		if !strings.HasPrefix(e.Name, "block-") {
			t.Errorf("endpoint %q is not a block's", e.Name)
		}
		done += e.Done.(float64)
	}
	if done != 2*n { // the analysis and the command of each run
		t.Errorf("endpoints report %v tasks done, want %d: %+v", done, 2*n, view.Endpoints)
	}
	if len(view.Blocks) != 1 {
		t.Fatalf("%d blocks listed, want the one still idling", len(view.Blocks))
	}
	if b := view.Blocks[0]; b.State != "running" || b.StartupS == nil || *b.StartupS <= 0 || *b.StartupS > 60 {
		t.Errorf("block %+v: start-up time %v", b, b.StartupS)
	} else {
		t.Logf("Slurm job %s (%s): node start-up %.2f s", b.ID, b.Name, *b.StartupS)
	}
	req, _ := http.NewRequest(http.MethodGet, r.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	startups := -1
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "picoflow_block_startup_seconds_count "); ok {
			startups, _ = strconv.Atoi(v)
		}
	}
	if startups < 1 {
		t.Errorf("picoflow_block_startup_seconds_count %d, want at least 1", startups)
	}
	// Idle, the block's endpoint exits and its Slurm job ends.
	eventually(t, 60*time.Second, "the block to end", func() bool {
		view.Blocks = nil
		return r.get(t, "/api/v1/compute/endpoints", &view) == nil && len(view.Blocks) == 0
	})
}

// TestOneReplicaScalesBlocks: two replicas on one PostgreSQL database, both
// started with --provider slurm --max-blocks 1, run one block between them
// (one replica holds the scaling), and hpc flows sent to both finish on it.
func TestOneReplicaScalesBlocks(t *testing.T) {
	t.Parallel()
	needSlurm(t)
	const n = 6
	url := pgtest.URL(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "shared")
	token := pgToken(t, url, "agent:load")
	addrs := []string{freeAddr(t), freeAddr(t)}
	all := "http://" + addrs[0] + ",http://" + addrs[1]
	var rigs []*rig
	var procs []*proc
	for i, name := range []string{"server-a", "server-b"} {
		procs = append(procs, start(t, dir, name, nil, "server", "--db", url, "--data", data, "--addr", addrs[i], "--rescue-after", "3s",
			"--provider", "slurm", "--max-blocks", "1", "--block-idle", "3s", "--command-memory-mb", "256", "--block-server", all))
		healthy(t, name, "http://"+addrs[i])
		rigs = append(rigs, &rig{base: "http://" + addrs[i], token: token})
	}
	leader := func() int {
		for i, r := range rigs {
			var view struct{ Blocks []struct{ State string } }
			if r.get(t, "/api/v1/compute/endpoints", &view) == nil && len(view.Blocks) > 0 {
				return i
			}
		}
		return -1
	}
	var most, polls atomic.Int32
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			blocks := 0
			for _, r := range rigs {
				var view struct{ Blocks []struct{ State string } }
				if err := r.get(t, "/api/v1/compute/endpoints", &view); err != nil {
					continue
				}
				for _, b := range view.Blocks {
					if b.State != "finished" {
						blocks++
					}
				}
			}
			polls.Add(1)
			if m := most.Load(); int32(blocks) > m {
				most.Store(int32(blocks))
			}
		}
	}()
	sendLoad(t, dir, n, []string{rigs[0].base, rigs[1].base}, token, "hpc", 24, nil)
	held := -1
	eventually(t, 30*time.Second, "a replica to list the block", func() bool { held = leader(); return held >= 0 })
	rigs[0].allSucceeded(t, n, 120*time.Second, "the hpc runs to finish")
	close(stop)
	<-polled
	if most.Load() != 1 {
		t.Fatalf("at most %d blocks at once over %d looks, want 1 (max-blocks 1 with two replicas)", most.Load(), polls.Load())
	}
	// The scaling replica dies; once its block has gone idle, new work
	// gets a block from the other.
	procs[held].kill()
	other := rigs[1-held]
	eventually(t, 30*time.Second, "the dead replica's block to end", func() bool {
		var view struct{ Endpoints []struct{ Running int } }
		if other.get(t, "/api/v1/compute/endpoints?since=5s", &view) != nil {
			return false
		}
		return len(view.Endpoints) == 0
	})
	killed := time.Now()
	sendLoad(t, filepath.Join(dir, "more"), 2, []string{other.base}, token, "hpc", 24, nil)
	other.allSucceeded(t, n+2, 120*time.Second, "the runs after the hand-over to finish")
	var view struct {
		Endpoints []struct {
			Name      string
			FirstSeen time.Time `json:"first_seen"`
			Done      int
		}
	}
	if err := other.get(t, "/api/v1/compute/endpoints", &view); err != nil {
		t.Fatal(err)
	}
	newBlocks := 0
	for _, e := range view.Endpoints {
		if e.FirstSeen.After(killed) && e.Done > 0 {
			newBlocks++
		}
	}
	if newBlocks == 0 {
		t.Fatalf("no block started after the scaling replica died did the work: %+v", view.Endpoints)
	}
}
