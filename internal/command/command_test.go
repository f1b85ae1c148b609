package command_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/command"
)

func input(t *testing.T) command.Input {
	dir := t.TempDir()
	in := filepath.Join(dir, "my data.emd") // a space: one argument all the same
	os.WriteFile(in, []byte("HDF5 bytes"), 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	return command.Input{Path: in, OutDir: out, FileName: "my data.emd", RunID: "r1", SHA256: "abc"}
}

func TestRunProductsAndData(t *testing.T) {
	t.Parallel()
	set, err := command.Parse([]string{`count=sh -c 'wc -c < "$1" > size.txt; printf "{\"bytes\": %d}" $(cat size.txt) > result.json; echo counted "$2" $PICOFLOW_RUN_ID' sh {input} "{name}"`})
	if err != nil {
		t.Fatal(err)
	}
	in := input(t)
	res, err := set.Run(context.Background(), "count", in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Products) != 1 || res.Products[0].Name != "count-size.txt" || res.Products[0].Size != 3 {
		t.Fatalf("products %+v", res.Products)
	}
	if b, _ := os.ReadFile(filepath.Join(in.OutDir, "count-size.txt")); strings.TrimSpace(string(b)) != "10" {
		t.Fatalf("count-size.txt: %q", b)
	}
	if string(res.Data) != `{"bytes": 10}` {
		t.Fatalf("data %s", res.Data)
	}
	if strings.TrimSpace(res.Output) != "counted my data.emd r1" {
		t.Fatalf("output %q", res.Output)
	}
	if _, err := os.Stat(filepath.Join(in.OutDir, "result.json")); !os.IsNotExist(err) {
		t.Fatal("result.json left as a product")
	}
}

func TestRunFails(t *testing.T) {
	t.Parallel()
	set, _ := command.Parse([]string{`bad=sh -c 'echo reading the file >&2; echo no dataset /data >&2; exit 3'`, `nojson=sh -c 'echo nope > result.json'`})
	_, err := set.Run(context.Background(), "bad", input(t))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "no dataset /data") {
		t.Fatalf("failing command: %v", err)
	}
	if _, err := set.Run(context.Background(), "nojson", input(t)); err == nil || !strings.Contains(err.Error(), "result.json is not JSON") {
		t.Fatalf("bad result.json: %v", err)
	}
	_, err = set.Run(context.Background(), "rm-rf", input(t))
	if !errors.Is(err, command.ErrUnknown) || !strings.Contains(err.Error(), "bad, nojson") {
		t.Fatalf("unknown command: %v", err)
	}
}

// TestRunCancelled: cancelling kills the command and what it started.
func TestRunCancelled(t *testing.T) {
	t.Parallel()
	set, _ := command.Parse([]string{`slow=sh -c 'sleep 30 & echo $! > child.pid; wait'`})
	in := input(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := set.Run(ctx, "slow", in); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled command: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("returned after %v", d)
	}
	pid, _ := os.ReadFile(filepath.Join(in.OutDir, "child.pid"))
	time.Sleep(100 * time.Millisecond)
	// Gone, or a zombie waiting to be reaped (state Z): not running.
	if b, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat"); err == nil {
		stat := string(b)
		if f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:]); len(f) > 0 && f[0] != "Z" {
			t.Fatalf("the command's child %s survived: %s", pid, stat)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	set, err := command.Parse([]string{`a=x 'one arg' "two \"quoted\"" three\ four`, ` b = y`})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"x", "one arg", `two "quoted"`, "three four"}; !slices.Equal(set["a"], want) {
		t.Fatalf("a = %q, want %q", set["a"], want)
	}
	if !slices.Equal(set.Names(), []string{"a", "b"}) {
		t.Fatalf("names %v", set.Names())
	}
	for _, bad := range []string{"noequals", "=x", "a=", "a='open", `a=x\`, "a b=x", "../a=x"} {
		if _, err := command.Parse([]string{bad}); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := command.Parse([]string{"a=x", "a=y"}); err == nil {
		t.Error("a command configured twice was accepted")
	}
}

// TestRunMemoryLimit: with a memory limit a command that allocates more
// fails with its own out-of-memory message; without, it runs.
func TestRunMemoryLimit(t *testing.T) {
	t.Parallel()
	set, _ := command.Parse([]string{`big=/usr/bin/python3 -c 'x = bytearray(400_000_000); print(len(x))'`})
	in := input(t)
	in.Memory = 200 << 20
	if _, err := set.Run(context.Background(), "big", in); err == nil || !strings.Contains(err.Error(), "MemoryError") {
		t.Fatalf("400 MB under a 200 MiB limit: %v", err)
	}
	in = input(t)
	res, err := set.Run(context.Background(), "big", in)
	if err != nil || strings.TrimSpace(res.Output) != "400000000" {
		t.Fatalf("without a limit: %v %+v", err, res)
	}
}
