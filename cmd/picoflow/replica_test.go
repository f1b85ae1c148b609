//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/store"
)

// pgToken creates an API token for principal, agent and admin, in the
// PostgreSQL database at url, as `picoflow token create` would.
func pgToken(t *testing.T, url, principal string) string {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	token, err := auth.NewTokens(db.Write, db.Read).Create(context.Background(), "t", principal, auth.RoleAgent, auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestServerReplicaKill9: two server processes share one PostgreSQL
// database and data directory; flows are started on the first, which is
// killed with SIGKILL while they run; the second finishes all of them,
// each once.
func TestServerReplicaKill9(t *testing.T) {
	t.Parallel()
	const n = 12
	url := pgtest.URL(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "shared")
	token := pgToken(t, url, "agent:load")
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := replica(t, dir, "server-a", url, data, addrA, "3s")
	replica(t, dir, "server-b", url, data, addrB, "3s")
	sendLoad(t, dir, n, []string{"http://" + addrA}, token, "hyperspectral", 24, nil)
	a.kill() // SIGKILL while its steps run
	r := &rig{base: "http://" + addrB, token: token}
	r.allSucceeded(t, n, 90*time.Second, "replica B to finish every run")
	var res struct{ Total int }
	if err := r.get(t, "/api/v1/records?limit=1", &res); err != nil || res.Total != n {
		t.Fatalf("%d records for %d files (%v)", res.Total, n, err)
	}
}

// TestAgentFailsOver: an agent given two server replicas uploads to the
// first, which is killed with SIGKILL mid-upload; the agent goes on with
// the second, resuming the same upload from the offset the replicas share,
// and the file's flow runs once.
func TestAgentFailsOver(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	dir := t.TempDir()
	r := &rig{dir: dir, data: filepath.Join(dir, "shared"), folder: filepath.Join(dir, "instrument"), ledger: filepath.Join(dir, "agent.db")}
	os.MkdirAll(r.folder, 0o755)
	r.token = pgToken(t, url, "agent:pc")
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := replica(t, dir, "server-a", url, r.data, addrA, "3s")
	replica(t, dir, "server-b", url, r.data, addrB, "3s")
	r.base = "http://" + addrB
	writeSI(t, filepath.Join(r.folder, "si.emd"), 40)
	ag := start(t, dir, "agent", []string{"PICOFLOW_TOKEN=" + r.token}, "agent", "run", "--server", "http://"+addrA+",http://"+addrB,
		"--folder", r.folder+"=hyperspectral", "--ledger", r.ledger, "--settle", "200ms", "--max-mb-per-s", "10")
	var before *agent.Entry
	eventually(t, 60*time.Second, "the upload to replica A to be under way", func() bool {
		e := r.entry(t)
		if e == nil || e.State != agent.StateUploading || !strings.HasPrefix(e.UploadURL, "http://"+addrA+"/") {
			return false
		}
		fi, err := os.Stat(filepath.Join(r.data, "uploads", e.UploadURL[strings.LastIndex(e.UploadURL, "/")+1:]))
		if err == nil && fi.Size() > 2<<20 && fi.Size() < e.Size/2 {
			before = e
			return true
		}
		return false
	})
	a.kill()
	r.doneOnce(t, before)
	ag.kill()
	log, _ := os.ReadFile(ag.log)
	if !strings.Contains(string(log), "trying the next") {
		t.Errorf("the agent's log does not tell of the move to replica B:\n%s", log)
	}
	// The operator's view: which replica answers, and the file done.
	st := start(t, dir, "status", nil, "agent", "status", "--ledger", r.ledger, "--server", "http://"+addrA+",http://"+addrB)
	st.cmd.Wait()
	out, _ := os.ReadFile(st.log)
	for _, want := range []string{"server http://" + addrA + ": unreachable", "server http://" + addrB + ": reachable", "files: 1 done\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("agent status lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`\ndone +` + regexp.QuoteMeta(filepath.Join(r.folder, "si.emd"))).Match(out) {
		t.Errorf("agent status lacks the done file:\n%s", out)
	}
}
