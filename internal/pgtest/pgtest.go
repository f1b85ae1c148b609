// Package pgtest gives tests a real PostgreSQL: the server named by
// PICOFLOW_TEST_PG (CI starts one), or else a throw-away server started
// from Debian's PostgreSQL binaries in a temporary directory. Each call gets
// its own empty schema. A missing PostgreSQL fails the test; it never skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Env names the PostgreSQL URL to use instead of starting one.
const Env = "PICOFLOW_TEST_PG"

var (
	once     sync.Once
	baseURL  string
	setupErr error
)

// Pool returns a pool whose search_path is a new, empty schema.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	once.Do(func() { baseURL, setupErr = server() })
	if setupErr != nil {
		tb.Fatalf("PostgreSQL for tests: %v (set %s, or install Debian's postgresql)", setupErr, Env)
	}
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	schemaName := "t_" + hex.EncodeToString(b)
	admin, err := pgxpool.New(ctx, baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schemaName); err != nil {
		tb.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schemaName
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		pool.Close()
		if a, err := pgxpool.New(context.Background(), baseURL); err == nil {
			a.Exec(context.Background(), "DROP SCHEMA "+schemaName+" CASCADE")
			a.Close()
		}
	})
	return pool
}

// server returns the URL of a running PostgreSQL.
func server() (string, error) {
	if u := os.Getenv(Env); u != "" {
		return u, nil
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", fmt.Errorf("no %s and no /usr/lib/postgresql/*/bin/initdb", Env)
	}
	sort.Strings(bins)
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "picoflow-pg-")
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// PostgreSQL refuses to run as root: run it as the postgres user then.
	run := func(name string, args ...string) *exec.Cmd { return exec.Command(filepath.Join(bin, name), args...) }
	if u, _ := user.Current(); u != nil && u.Uid == "0" {
		if err := exec.Command("chown", "-R", "postgres", dir).Run(); err != nil {
			return "", fmt.Errorf("chown %s: %w", dir, err)
		}
		run = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "picoflow", "-A", "trust", "--no-sync").CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %w: %s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c max_connections=200", port, dir)
	if out, err := run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return "", fmt.Errorf("pg_ctl start: %w: %s %s", err, out, log)
	}
	dsn := fmt.Sprintf("postgres://picoflow@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, err := pgxpool.New(context.Background(), dsn)
		if err == nil {
			err = p.Ping(context.Background())
			p.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("postgres did not come up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The server outlives this test binary only until the OS reaps it;
	// stop it at exit through a sentinel process.
	stop := exec.Command("sh", "-c", fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s", os.Getpid(),
		strings.Join(run("pg_ctl", "-D", data, "-m", "immediate", "stop").Args, " ")+"; rm -rf "+dir))
	stop.Start()
	return dsn, nil
}

// URL returns a connection URL whose search_path is a new, empty schema.
func URL(tb testing.TB) string {
	tb.Helper()
	pool := Pool(tb)
	u, err := url.Parse(baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", pool.Config().ConnConfig.RuntimeParams["search_path"])
	u.RawQuery = q.Encode()
	return u.String()
}
